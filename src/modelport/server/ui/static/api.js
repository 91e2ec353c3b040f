// The gateway's JSON routes, as the UI calls them (the same any script can call).

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** The one-line message of an error body ({"error": {"message"}}) or a fallback. */
export async function errorMessage(response) {
  const body = await response.json().catch(() => null);
  return body?.error?.message || `The gateway answered ${response.status} ${response.statusText}.`;
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const options = { method, signal, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401) {
    // Signed out (the session expired, or the gateway restarted): sign in again.
    location.assign("/ui/login");
  }
  if (!response.ok) throw new ApiError(await errorMessage(response), response.status);
  return response.status === 204 ? null : response.json();
}
