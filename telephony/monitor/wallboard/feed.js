// The monitor feed's connection: WebSocket first, Server-Sent Events if that
// never works, resuming with `since=<last seq>` after every drop so the server
// sends exactly what was missed (or a fresh snapshot). Schema: docs/monitor.md.

const CLOSE_TOO_SLOW = 4008;
const BACKOFF_S = [0.5, 1, 2, 4, 8, 15];
// A WebSocket that fails this many times without opening is taken as blocked
// (a proxy, a policy); SSE carries the same feed, so the page stays on it.
const WS_FAILURES_BEFORE_SSE = 3;
const MESSAGE_TYPES = ["snapshot", "call", "queue", "agent", "screen_pop", "reset"];

export class Feed {
  /**
   * onMessage(msg) gets each message once, in order; onState(state, transport)
   * hears "connecting", "open", "retrying" and "unauthorized"; checkToken()
   * resolves false when the server rejects the token (then the feed stops).
   */
  constructor({ path, token, onMessage, onState, checkToken }) {
    Object.assign(this, { path, token, onMessage, onState, checkToken });
    this.lastSeq = null;
    this.transport = typeof WebSocket === "function" ? "ws" : "sse";
    this.wsFailures = 0;
    this.attempt = 0;
    this.conn = null;
    this.timer = null;
  }

  start() {
    this.connect();
  }

  /** Forget the position and reconnect: the next message will be a snapshot. */
  restart() {
    this.lastSeq = null;
    this.drop();
    this.connect();
  }

  url(scheme) {
    const params = new URLSearchParams({ token: this.token });
    if (this.lastSeq !== null) params.set("since", String(this.lastSeq));
    return `${scheme}//${location.host}${this.path}?${params}`;
  }

  connect() {
    clearTimeout(this.timer);
    this.onState("connecting", this.transport);
    if (this.transport === "ws") this.openWebSocket();
    else this.openEventSource();
  }

  receive(text) {
    const msg = JSON.parse(text);
    this.lastSeq = msg.seq; // a snapshot's seq is the last message it includes
    this.attempt = 0;
    this.onMessage(msg);
  }

  openWebSocket() {
    const ws = new WebSocket(this.url(location.protocol === "https:" ? "wss:" : "ws:"));
    let opened = false;
    this.conn = ws;
    ws.onopen = () => {
      opened = true;
      this.wsFailures = 0;
      this.onState("open", "ws");
    };
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => {
      if (this.conn !== ws) return; // replaced by restart()
      this.conn = null;
      if (!opened && ++this.wsFailures >= WS_FAILURES_BEFORE_SSE) this.transport = "sse";
      this.retry(event.code === CLOSE_TOO_SLOW, opened);
    };
  }

  openEventSource() {
    const es = new EventSource(this.url(location.protocol));
    let opened = false;
    this.conn = es;
    es.onopen = () => {
      opened = true;
      this.onState("open", "sse");
    };
    for (const type of MESSAGE_TYPES) {
      es.addEventListener(type, (event) => this.receive(event.data));
    }
    // The server ends a too-slow stream with `event: close` ("4008 too slow").
    es.addEventListener("close", (event) => {
      this.onDrop(es, String(event.data).startsWith(String(CLOSE_TOO_SLOW)), true);
    });
    // EventSource would reconnect by itself (the server honours its Last-Event-ID);
    // reconnecting here keeps one backoff, one token check and one `since` for both
    // transports.
    es.onerror = () => this.onDrop(es, false, opened);
  }

  onDrop(es, tooSlow, opened) {
    if (this.conn !== es) return;
    es.close();
    this.conn = null;
    this.retry(tooSlow, opened);
  }

  async retry(tooSlow, opened) {
    if (!opened && this.checkToken && !(await this.checkToken())) {
      this.onState("unauthorized", this.transport);
      return;
    }
    // Too slow is not a failure to back off from: come back at once, from where we were.
    const delay = BACKOFF_S[tooSlow ? 0 : Math.min(this.attempt++, BACKOFF_S.length - 1)];
    this.onState("retrying", this.transport);
    this.timer = setTimeout(() => this.connect(), delay * 1000 * (0.8 + Math.random() * 0.4));
  }

  drop() {
    clearTimeout(this.timer);
    const conn = this.conn;
    this.conn = null;
    if (conn) conn.close();
  }
}
