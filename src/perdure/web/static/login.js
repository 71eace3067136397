// Signing in from a link: `perdure web` prints /login#token=..., with the token after
// '#', which a browser never sends to a server, so it reaches no access log, ours or a
// proxy's. This script takes it out of the address bar and the history at once and
// posts it with the form, as if typed.

const found = /(?:^#|&)token=([^&]*)/.exec(window.location.hash);
if (found) {
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  const form = document.getElementById("login");
  let token = found[1];
  try {
    token = decodeURIComponent(token);
  } catch {
    // not percent-encoded: as given
  }
  form.elements.token.value = token;
  form.submit();
}
