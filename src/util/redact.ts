// Credentials out of URLs before they reach a log line or an error message: the password
// of `scheme://user:password@host`, or the whole of a lone `scheme://token@host` (NATS
// token auth). Works on a comma-separated list of URLs (how NATS servers are given) and on
// text that does not parse as a URL. A leaf module.

/** `text` with every URL's password (or lone token) replaced by `***`. */
export function redactUrl(text: string): string {
  return text.replace(/\/\/([^@/\s,]*)@/g, (_match, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return `//${colon < 0 ? '***' : `${userinfo.slice(0, colon)}:***`}@`;
  });
}
