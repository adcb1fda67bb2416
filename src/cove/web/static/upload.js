// Cove: the upload page, doing what huggingface_hub does: preupload (which files go to LFS), the LFS batch
// API and a PUT of each large file (with progress), then one NDJSON commit. The API calls ride on the
// browser session with the page's CSRF token (X-CSRF-Token). Without script, the form posts the files.
"use strict";
(() => {
  const form = document.querySelector("form[data-upload]");
  if (!form) return;
  const list = document.getElementById("upload-list");
  const errorBox = document.getElementById("upload-error");
  const csrf = form.querySelector('input[name="csrf_token"]').value;
  const picked = new Map(); // path in repo -> File

  // -- SHA-256, incremental (crypto.subtle is missing outside secure contexts, and cannot stream) --------
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);

  class Sha256 {
    constructor() {
      this.h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
      this.w = new Uint32Array(64);
      this.buf = new Uint8Array(64);
      this.fill = 0;
      this.len = 0;
    }
    block(d, o) {
      const w = this.w, h = this.h;
      for (let i = 0; i < 16; i++) w[i] = (d[o + 4 * i] << 24) | (d[o + 4 * i + 1] << 16) | (d[o + 4 * i + 2] << 8) | d[o + 4 * i + 3];
      for (let i = 16; i < 64; i++) {
        const a = w[i - 15], b = w[i - 2];
        const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
        const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      let [a, b, c, e, f, g, hh, dd] = [h[0], h[1], h[2], h[4], h[5], h[6], h[7], h[3]];
      for (let i = 0; i < 64; i++) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const t1 = (hh + S1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        hh = g; g = f; f = e; e = (dd + t1) | 0; dd = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += dd; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    update(data) {
      let i = 0;
      this.len += data.length;
      if (this.fill) {
        while (this.fill < 64 && i < data.length) this.buf[this.fill++] = data[i++];
        if (this.fill < 64) return;
        this.block(this.buf, 0);
        this.fill = 0;
      }
      for (; i + 64 <= data.length; i += 64) this.block(data, i);
      while (i < data.length) this.buf[this.fill++] = data[i++];
    }
    hex() {
      const bits = this.len * 8;
      const pad = new Uint8Array(((this.fill < 56) ? 56 : 120) - this.fill + 8);
      pad[0] = 0x80;
      const hi = Math.floor(bits / 2 ** 32), lo = bits >>> 0;
      const n = pad.length;
      pad[n - 8] = hi >>> 24; pad[n - 7] = hi >>> 16; pad[n - 6] = hi >>> 8; pad[n - 5] = hi;
      pad[n - 4] = lo >>> 24; pad[n - 3] = lo >>> 16; pad[n - 2] = lo >>> 8; pad[n - 1] = lo;
      this.update(pad);
      return Array.from(this.h, (x) => x.toString(16).padStart(8, "0")).join("");
    }
  }

  const CHUNK = 8 << 20;
  async function sha256(file, onProgress) {
    const s = new Sha256();
    for (let off = 0; off < file.size; off += CHUNK) {
      s.update(new Uint8Array(await file.slice(off, off + CHUNK).arrayBuffer()));
      onProgress(Math.min(off + CHUNK, file.size) / file.size);
    }
    return s.hex();
  }

  function base64(bytes) {
    let out = "";
    for (let i = 0; i < bytes.length; i += 0x8000) out += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(out);
  }

  // -- picking files: inputs and drag and drop (folders walked) -------------------------------------
  const folder = form.dataset.folder;
  function add(file, rel) {
    const path = (folder ? folder + "/" : "") + rel.replace(/^\/+/, "");
    picked.set(path, file);
    render();
  }
  function render() {
    list.textContent = "";
    for (const [path, file] of picked) {
      const li = document.createElement("li");
      li.dataset.path = path;
      li.innerHTML = "<span class=\"name\"></span> <span class=\"muted size\"></span> <progress max=\"1\" value=\"0\"></progress> <span class=\"state muted\"></span>";
      li.querySelector(".name").textContent = path;
      li.querySelector(".size").textContent = (file.size / 1e6).toFixed(1) + " MB";
      list.appendChild(li);
    }
  }
  function row(path) { return list.querySelector(`li[data-path="${CSS.escape(path)}"]`); }
  function progress(path, value, state) {
    const li = row(path);
    if (!li) return;
    li.querySelector("progress").value = value;
    if (state) li.querySelector(".state").textContent = state;
  }

  document.getElementById("file-input").addEventListener("change", (e) => {
    for (const f of e.target.files) add(f, f.name);
  });
  document.getElementById("folder-input").addEventListener("change", (e) => {
    for (const f of e.target.files) add(f, f.webkitRelativePath || f.name);
  });
  const zone = document.getElementById("dropzone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  function walk(entry, prefix) {
    return new Promise((resolve) => {
      if (entry.isFile) {
        entry.file((f) => { add(f, prefix + f.name); resolve(); }, () => resolve());
      } else if (entry.isDirectory) {
        const reader = entry.createReader();
        const all = [];
        const next = () => reader.readEntries(async (batch) => {
          if (!batch.length) {
            for (const child of all) await walk(child, prefix + entry.name + "/");
            resolve();
          } else { all.push(...batch); next(); }
        }, () => resolve());
        next();
      } else resolve();
    });
  }
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const entries = Array.from(e.dataTransfer.items || []).map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry());
    if (entries.length && entries.every(Boolean)) {
      for (const entry of entries) await walk(entry, "");
    } else {
      for (const f of e.dataTransfer.files) add(f, f.name);
    }
  });

  // -- the commit ------------------------------------------------------------------------------------
  async function api(url, body, contentType) {
    const r = await fetch(url, {method: "POST", credentials: "same-origin", body,
                                headers: {"Content-Type": contentType, "X-CSRF-Token": csrf}});
    if (!r.ok) {
      const msg = r.headers.get("X-Error-Message") || (await r.text()).slice(0, 300);
      throw new Error(msg || `HTTP ${r.status}`);
    }
    return r.json();
  }
  function put(url, file, path) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", url);
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) progress(path, e.loaded / e.total, "uploading"); };
      xhr.onload = () => (xhr.status < 300 ? resolve() : reject(new Error(`Upload of ${path} failed: ${xhr.status} ${xhr.getResponseHeader("X-Error-Message") || ""}`)));
      xhr.onerror = () => reject(new Error(`Upload of ${path} failed`));
      xhr.send(file);
    });
  }

  async function run() {
    const {plural, repo, rev, direct} = form.dataset;
    const enc = encodeURIComponent(rev);
    const paths = [...picked.keys()];
    const meta = new Map();
    for (const path of paths) {
      const file = picked.get(path);
      const head = new Uint8Array(await file.slice(0, 512).arrayBuffer());
      meta.set(path, {size: file.size, sample: base64(head)});
    }
    const modes = new Map();
    for (let i = 0; i < paths.length; i += 1000) {
      const files = paths.slice(i, i + 1000).map((p) => ({path: p, size: meta.get(p).size, sample: meta.get(p).sample}));
      const out = await api(`/api/${plural}/${repo}/preupload/${enc}`, JSON.stringify({files}), "application/json");
      for (const f of out.files) modes.set(f.path, f);
    }
    const lfs = [];
    for (const path of paths) {
      if (modes.get(path).shouldIgnore) { progress(path, 1, "ignored (.gitignore)"); continue; }
      if (modes.get(path).uploadMode === "lfs") {
        const oid = await sha256(picked.get(path), (x) => progress(path, x, "hashing"));
        meta.get(path).oid = oid;
        lfs.push(path);
      }
    }
    if (lfs.length) {
      const objects = lfs.map((p) => ({oid: meta.get(p).oid, size: meta.get(p).size}));
      const batch = await api(form.dataset.lfs, JSON.stringify({operation: "upload", transfers: ["basic"], objects, hash_algo: "sha256"}),
                              "application/vnd.git-lfs+json");
      for (const obj of batch.objects) {
        const path = lfs.find((p) => meta.get(p).oid === obj.oid && !meta.get(p).sent);
        meta.get(path).sent = true;
        if (obj.error) throw new Error(`${path}: ${obj.error.message}`);
        if (obj.actions && obj.actions.upload) await put(obj.actions.upload.href, picked.get(path), path);
        progress(path, 1, "uploaded");
      }
    }
    const fd = new FormData(form);
    const summary = (fd.get("summary") || "").trim() || `Upload ${paths.length} file${paths.length > 1 ? "s" : ""}`;
    const lines = [JSON.stringify({key: "header", value: {summary, description: fd.get("description") || ""}})];
    for (const path of paths) {
      const m = meta.get(path), mode = modes.get(path);
      if (mode.shouldIgnore) continue;
      if (mode.uploadMode === "lfs") {
        lines.push(JSON.stringify({key: "lfsFile", value: {path, algo: "sha256", oid: m.oid, size: m.size}}));
      } else {
        const bytes = new Uint8Array(await picked.get(path).arrayBuffer());
        lines.push(JSON.stringify({key: "file", value: {path, content: base64(bytes), encoding: "base64"}}));
        progress(path, 1, "ready");
      }
    }
    const pr = !direct || fd.get("create_pr") === "1";
    const out = await api(`/api/${plural}/${repo}/commit/${enc}${pr ? "?create_pr=1" : ""}`, lines.join("\n") + "\n",
                          "application/x-ndjson");
    window.location.assign(out.pullRequestUrl ? new URL(out.pullRequestUrl).pathname : `${form.dataset.base}/tree/${enc}`);
  }

  form.addEventListener("submit", (e) => {
    if (!picked.size) return; // nothing picked through script: let the plain form post what the input holds
    e.preventDefault();
    const button = document.getElementById("upload-submit");
    button.disabled = true;
    errorBox.hidden = true;
    run().catch((err) => {
      errorBox.textContent = err.message;
      errorBox.hidden = false;
      button.disabled = false;
    });
  });
})();
