// The WebSocket feed (GET /v1/live): reconnects with a growing delay, reports its state,
// hands each frame to the map. Code 4401 means the session ended: back to the login form.

const SESSION_ENDED = 4401;

export class LiveFeed {
  constructor({ onFrame, onState, onSessionEnded }) {
    this.onFrame = onFrame;
    this.onState = onState;
    this.onSessionEnded = onSessionEnded;
    this.socket = null;
    this.delay = 1000;
    this.stopped = true;
    this.timer = 0;
  }

  start() {
    this.stopped = false;
    this._open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "logout");
    this.socket = null;
    this.onState("off");
  }

  _open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/v1/live`);
    this.socket = socket;
    this.onState("connecting");
    socket.addEventListener("open", () => {
      this.delay = 1000;
      this.onState("live");
    });
    socket.addEventListener("message", (event) => {
      let doc;
      try {
        doc = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onFrame(doc);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (event.code === SESSION_ENDED) {
        this.stopped = true;
        this.onState("off");
        this.onSessionEnded();
        return;
      }
      if (this.stopped) return;
      this.onState("reconnecting");
      this.timer = setTimeout(() => this._open(), this.delay);
      this.delay = Math.min(this.delay * 2, 30000);
    });
  }
}
