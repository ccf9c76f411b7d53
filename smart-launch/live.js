// The WebSocket: the session cookie authenticates it. It reconnects with jittered exponential
// backoff and resumes with `?after=<last message id received on the socket>`: the server replays
// what was missed, then sends `ready`, then live traffic, with no gap and no duplicate.

const MAX_DELAY_MS = 30000;

export class Live {
  /**
   * onFrame(frame): every server frame. onState('connecting'|'syncing'|'live'|'offline'|'stopped').
   * onTrouble(afterId): after several failed attempts in a row; resolves to 'retry', 'reset'
   * (the resume position is unknown to the server: connect without it) or 'stop'.
   * onResumeLost(): the socket reconnected without a resume position, so anything sent while it
   * was down must be reloaded over REST.
   */
  constructor({ onFrame, onState, onTrouble, onResumeLost }) {
    Object.assign(this, { onFrame, onState, onTrouble, onResumeLost });
    this.ws = null;
    this.after = null; // id of the newest message frame received on a socket
    this.afterSeq = -1;
    this.failures = 0;
    this.everReady = false;
    this.stopped = true;
    this.timer = null;
    this.reloadOnReady = false; // the app loaded history without waiting for the first `ready`
    this.firstReady = new Promise((resolve) => { this.resolveReady = resolve; });
    this.kick = () => { if (!this.stopped && !this.ws) this.connectNow(); };
  }

  /**
   * Connects. Resolves true once the socket is registered with the server (first `ready`), or
   * false after `waitMs`: history read after a true answer cannot miss a message that arrives
   * before the socket; after false, the first `ready` triggers onResumeLost to close that gap.
   */
  start(waitMs = 4000) {
    if (this.stopped) {
      this.stopped = false;
      window.addEventListener('online', this.kick);
      document.addEventListener('visibilitychange', this.kick);
      this.connectNow();
    }
    return Promise.race([
      this.firstReady,
      new Promise((resolve) => { setTimeout(() => resolve(false), waitMs); }),
    ]).then((ok) => {
      if (!ok && !this.everReady) this.reloadOnReady = true;
      return Boolean(ok || this.everReady);
    });
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener('online', this.kick);
    document.removeEventListener('visibilitychange', this.kick);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, 'signed out');
    }
    this.onState('stopped');
  }

  get open() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  /** Sends a client frame; false when the socket is not open (the caller falls back to REST). */
  send(frame) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const q = this.after ? `?after=${encodeURIComponent(this.after)}` : '';
    return `${proto}//${location.host}/api/v1/ws${q}`;
  }

  connectNow() {
    clearTimeout(this.timer);
    if (this.stopped || this.ws) return;
    this.onState('connecting');
    const resumed = Boolean(this.after);
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (e) {
      this.retry();
      return;
    }
    this.ws = ws;
    let ready = false;
    ws.onopen = () => this.onState('syncing');
    ws.onmessage = (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      if (frame.type === 'message' && frame.message && frame.message.seq > this.afterSeq) {
        this.after = frame.message.id;
        this.afterSeq = frame.message.seq;
      }
      if (frame.type === 'ready') {
        ready = true;
        this.failures = 0;
        this.onState('live');
        if (!resumed && (this.everReady || this.reloadOnReady)) this.onResumeLost();
        this.reloadOnReady = false;
        this.everReady = true;
        this.resolveReady(true);
      }
      this.onFrame(frame);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      this.onState('offline');
      if (!ready) this.failures += 1;
      // 1013: the server dropped a slow connection; come straight back and resume.
      this.retry(ev.code === 1013 && ready ? 0 : undefined);
    };
  }

  async retry(delayMs) {
    if (this.stopped) return;
    if (this.failures >= 3 && this.failures % 3 === 0) {
      const verdict = await this.onTrouble(this.after).catch(() => 'retry');
      if (verdict === 'stop' || this.stopped) return;
      if (verdict === 'reset') {
        this.after = null;
        this.afterSeq = -1;
      }
    }
    const backoff = Math.min(MAX_DELAY_MS, 500 * 2 ** Math.min(this.failures, 6));
    const delay = delayMs ?? backoff / 2 + Math.random() * (backoff / 2);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connectNow(), delay);
  }
}
