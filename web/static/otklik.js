// Otklik console behaviour. No inline scripts: the Content-Security-Policy forbids them.
document.addEventListener("submit", (event) => {
  const button = event.target.querySelector("button[data-once]");
  if (!button) return;
  if (button.dataset.sent) {
    event.preventDefault(); // the server also refuses a second copy (idempotency key)
    return;
  }
  button.dataset.sent = "1";
  button.textContent = "Sending…";
});
