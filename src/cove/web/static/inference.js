// Cove: the model page's inference widget. It posts to /models/{repo} (the API InferenceClient uses) with the
// browser's session, and draws the answer with DOM nodes only (no HTML from the model goes into the page).
(() => {
  const box = document.getElementById("inference-widget");
  if (!box) return;
  const task = box.dataset.task;
  const repo = box.dataset.repo;
  const out = document.getElementById("widget-output");
  const form = document.getElementById("widget-form");
  const val = (id) => (document.getElementById(id) || {}).value || "";
  const el = (tag, cls, text) => {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  };

  const examples = document.getElementById("widget-examples");
  if (examples) {
    examples.addEventListener("change", () => {
      const opt = examples.selectedOptions[0];
      const text = document.getElementById("widget-text");
      if (opt && text) text.value = opt.dataset.text;
    });
  }

  function payload() {
    if (task === "question-answering") return { inputs: { question: val("widget-question"), context: val("widget-context") } };
    if (task === "sentence-similarity") {
      const sentences = val("widget-sentences").split("\n").map((s) => s.trim()).filter(Boolean);
      return { inputs: { source_sentence: val("widget-source"), sentences } };
    }
    const body = { inputs: val("widget-text") };
    if (task === "zero-shot-classification") {
      body.parameters = { candidate_labels: val("widget-labels").split(",").map((s) => s.trim()).filter(Boolean) };
    }
    if (task === "text-generation") {
      body.parameters = { max_new_tokens: 50 };
      body.stream = true;
    }
    return body;
  }

  function bars(rows) {  // [{label, score}] as labelled bars
    const list = el("ul", "widget-bars");
    for (const r of rows) {
      const li = el("li", "widget-bar");
      li.append(el("span", "widget-label", r.label));
      const meter = el("meter");
      meter.min = 0; meter.max = 1; meter.value = r.score;
      li.append(meter, el("span", "widget-score", r.score.toFixed(3)));
      list.append(li);
    }
    return list;
  }

  function marked(text, spans, labelOf) {  // the text with its spans highlighted
    const p = el("p", "widget-marked");
    let at = 0;
    for (const s of [...spans].sort((a, b) => a.start - b.start)) {
      if (s.start < at) continue;
      p.append(document.createTextNode(text.slice(at, s.start)));
      const m = el("mark", "widget-entity", text.slice(s.start, s.end));
      const label = labelOf(s);
      if (label) { m.dataset.label = label; m.title = `${label} ${(s.score || 0).toFixed(3)}`; m.append(el("sup", null, label)); }
      p.append(m);
      at = s.end;
    }
    p.append(document.createTextNode(text.slice(at)));
    return p;
  }

  function draw(data, body) {
    out.replaceChildren();
    if (task === "text-classification") out.append(bars(data[0] || []));
    else if (task === "zero-shot-classification" || task === "fill-mask") {
      out.append(bars(data.map((r) => ({ label: r.label || r.token_str, score: r.score }))));
    } else if (task === "token-classification") {
      out.append(marked(body.inputs, data, (s) => s.entity_group || s.entity));
    } else if (task === "question-answering") {
      out.append(marked(body.inputs.context, [data], () => "answer"), el("p", "muted", `score ${data.score.toFixed(3)}`));
    } else if (task === "sentence-similarity") {
      out.append(bars(body.inputs.sentences.map((s, i) => ({ label: s, score: data[i] }))));
    } else if (task === "feature-extraction") {
      const flat = Array.isArray(data[0]) ? data[0] : data;
      out.append(el("p", "muted", `${Array.isArray(data[0]) ? data.length + " × " : ""}${flat.length} dimensions`),
        el("pre", "widget-vector", "[" + flat.slice(0, 8).map((x) => x.toFixed(4)).join(", ") + ", …]"));
    } else {
      const r = data[0] || {};
      out.append(el("p", "widget-generated", r.summary_text || r.translation_text || r.generated_text || ""));
    }
  }

  async function* events(resp) {  // the JSON of each server-sent `data:` event, until the body ends or [DONE]
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const line = buf.slice(0, cut).trim();
        buf = buf.slice(cut + 2);
        if (line.startsWith("data:") && line !== "data: [DONE]") yield JSON.parse(line.slice(5));
      }
    }
  }

  async function stream(resp) {  // TGI's server-sent events, one token each
    const p = el("p", "widget-generated");
    out.replaceChildren(p);
    for await (const ev of events(resp)) {
      if (ev.error) { out.append(el("p", "error-message", ev.error)); return; }
      if (ev.token && !ev.token.special) p.textContent += ev.token.text;
    }
    box.dataset.done = "1";
  }

  const chatBox = document.getElementById("widget-chat");
  const chatLog = document.getElementById("widget-chat-log");
  const history = [];

  async function chat() {  // OpenAI-style chat completion, streamed; the conversation so far is sent each time
    const text = document.getElementById("widget-text");
    history.push({ role: "user", content: text.value });
    chatLog.append(el("li", "widget-user", text.value));
    text.value = "";
    const answer = el("li", "widget-assistant");
    chatLog.append(answer);
    out.replaceChildren();
    const resp = await fetch("/v1/chat/completions", {
      method: "POST", credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": box.dataset.csrf },
      body: JSON.stringify({ model: repo, messages: history, stream: true, max_tokens: 100 }),
    });
    if (!resp.ok) {
      history.pop();
      let msg = resp.statusText;
      try { msg = (await resp.json()).error || msg; } catch (_) { /* not JSON */ }
      answer.remove();
      out.replaceChildren(el("p", "error-message", `${resp.status}: ${msg}`));
      return;
    }
    for await (const ev of events(resp)) {
      if (ev.error) { out.append(el("p", "error-message", ev.error)); continue; }
      const delta = ev.choices && ev.choices[0] && ev.choices[0].delta;
      if (delta && delta.content) answer.textContent += delta.content;
    }
    history.push({ role: "assistant", content: answer.textContent });
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (chatBox && chatBox.checked) {
      const button = document.getElementById("widget-compute");
      button.disabled = true;
      box.dataset.done = "";
      try { await chat(); } catch (err) { out.replaceChildren(el("p", "error-message", String(err))); }
      finally { button.disabled = false; box.dataset.done = "1"; }
      return;
    }
    const body = payload();
    const button = document.getElementById("widget-compute");
    button.disabled = true;
    box.dataset.done = "";
    out.replaceChildren(el("p", "muted", "Computing…"));
    try {
      const resp = await fetch(`/models/${repo}`, {
        method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json", "x-csrf-token": box.dataset.csrf },
        body: JSON.stringify(body),
      });
      if (!resp.ok) {
        let msg = resp.statusText;
        try { msg = (await resp.json()).error || msg; } catch (_) { /* not JSON */ }
        out.replaceChildren(el("p", "error-message", `${resp.status}: ${msg}`));
      } else if (body.stream) await stream(resp);
      else draw(await resp.json(), body);
    } catch (err) {
      out.replaceChildren(el("p", "error-message", String(err)));
    } finally {
      button.disabled = false;
      box.dataset.done = "1";
    }
  });
})();
