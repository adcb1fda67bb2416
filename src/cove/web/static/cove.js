// Cove: the little script the pages use. Everything works without it, except the pickers' auto-jump.
document.addEventListener("change", (e) => {
  const el = e.target;
  if (el.matches("select[data-nav]") && el.value) window.location.assign(el.value);
});
document.addEventListener("click", (e) => {
  const btn = e.target.closest("[data-copy]");
  if (!btn) return;
  const code = btn.parentElement.querySelector("pre");
  if (code && navigator.clipboard) {
    navigator.clipboard.writeText(code.innerText).then(() => {
      btn.textContent = "Copied";
      setTimeout(() => { btn.textContent = "Copy"; }, 1500);
    });
  }
});
document.addEventListener("submit", (e) => {
  const msg = e.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) e.preventDefault();
});
