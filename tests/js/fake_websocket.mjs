// A WebSocket stand-in for the client's unit tests: the test decides when each socket
// opens, what it receives and how it closes, and reads what the client sent.

export function fakeWebSockets() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      sockets.push(this);
    }
    send(text) {
      if (this.readyState !== 1) throw new Error(`send() in readyState ${this.readyState}`);
      this.sent.push(JSON.parse(text));
    }
    close(code, reason) {
      this.closedWith = { code, reason };
      this.readyState = 3;
    }
    // -- what the server side does --
    open() {
      this.readyState = 1;
      this.onopen?.({});
    }
    receive(frame) {
      this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
    }
    drop(code, reason = "") {
      // As browsers do: a clean close fires close only; a failed connection (1006) fires
      // error, then close.
      this.readyState = 3;
      if (code === 1006) this.onerror?.({});
      this.onclose?.({ code, reason });
    }
  }
  return { WebSocket: FakeWebSocket, sockets, last: () => sockets[sockets.length - 1] };
}

/** Lets pending promise callbacks run. */
export const settle = () => new Promise((resolve) => setImmediate(resolve));
