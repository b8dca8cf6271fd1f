// Must NOT compile: a hand-written event map says "chat.send" carries {text: string}.
import { connect } from "../../src/wsgate/static/wsgate.js";

interface Events {
  "chat.send": { data: { text: string }; reply: null; item: never };
}

const client = connect<Events>("ws://127.0.0.1:8000/chat/lobby");
client.request("chat.send", { text: 1 });
