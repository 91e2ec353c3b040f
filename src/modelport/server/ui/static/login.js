// The sign-in page: send the key as JSON (the gateway reads no form posts), then open the UI.
const form = document.getElementById("login-form");
const input = document.getElementById("login-key");
const error = document.getElementById("login-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  let message = "The gateway did not answer; is it still running?";
  try {
    const response = await fetch("/ui/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: input.value }),
      credentials: "same-origin",
    });
    if (response.ok) {
      input.value = "";
      location.assign("/");
      return;
    }
    const body = await response.json().catch(() => null);
    message = body?.error?.message || `The gateway answered ${response.status}.`;
  } catch {
    // keep the message above
  }
  error.textContent = message;
  error.hidden = false;
  input.focus();
});
input.focus();
