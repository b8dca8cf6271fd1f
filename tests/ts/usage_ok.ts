// Must compile with `tsc --noEmit --strict` (tests/test_browser_client.py). The lines
// marked @ts-expect-error must each be a type error, or the compilation fails.
import {
  connect,
  WsgateError,
  backoffDelay,
  shouldReconnect,
  type Client,
  type StateChange,
} from "../../src/wsgate/static/wsgate.js";

interface ChatMessage {
  text: string;
}
interface Posted {
  room: string;
  user: string;
  text: string;
}
// Interfaces, as the AsyncAPI/TypeScript generator emits them.
interface ChatGatewayEvents {
  "chat.send": { data: ChatMessage; reply: null; item: never };
  who: { data: null; reply: { room: string; members: number }; item: never };
  ticks: { data: { every: number }; reply: null; item: { n: number } };
}
interface ChatGatewayPushes {
  "chat.message": Posted;
  joined: { user: string };
}

async function typed(url: string): Promise<void> {
  const client: Client<ChatGatewayEvents, ChatGatewayPushes> = connect<
    ChatGatewayEvents,
    ChatGatewayPushes
  >(url, {
    reconnect: { initialDelay: 500, maxDelay: 8000, factor: 2, jitter: 1 },
    queueSize: 10,
    connectTimeout: 5000,
  });
  const sentNow: boolean = client.send("chat.send", { text: "hi" });
  const nothing: null = await client.request("chat.send", { text: "hi" }, { timeout: 500 });
  const who = await client.request("who", null);
  const members: number = who.members;
  for await (const tick of client.stream("ticks", { every: 1 })) {
    const n: number = tick.n;
    void n;
  }
  const off = client.on("chat.message", (m) => {
    const user: string = m.user;
    void user;
  });
  off();
  client.on("error", (e) => {
    const code: string = e.code;
    void code;
  });
  client.onState((change: StateChange) => {
    if (change.state === "reconnecting") {
      const delay: number | null = change.delay;
      void delay;
    }
  });
  try {
    await client.request("who", null);
  } catch (error) {
    if (error instanceof WsgateError) {
      const code: string = error.code;
      void code;
    }
  }
  const state: "connecting" | "open" | "reconnecting" | "closed" = client.state;
  client.close(1000, "bye");
  void [sentNow, nothing, members, state];

  // @ts-expect-error: text must be a string
  client.request("chat.send", { text: 1 });
  // @ts-expect-error: no such event in the map
  client.request("chat.nope", null);
  // @ts-expect-error: the reply of "who" is not a string
  const wrong: string = await client.request("who", null);
  // @ts-expect-error: no such push in the map
  client.on("chat.nope", () => {});
  // @ts-expect-error: "chat.message" pushes carry a Posted, not a number
  client.on("chat.message", (m: number) => m);
  // @ts-expect-error: not a state
  if (client.state === "gone") return;
  void wrong;
}

async function untyped(url: string): Promise<void> {
  // Without type arguments: any event name, unknown data.
  const client = connect(url, { reconnect: false, protocols: ["v1"], timeout: null });
  const reply: unknown = await client.request("anything", { x: 1 });
  client.send("whatever", [1, 2]);
  client.on("some.push", (data: unknown) => void data);
  for await (const item of client.stream("s", null)) void item;
  const d: number = backoffDelay(3, { maxDelay: 100 }, () => 0.5);
  const again: boolean = shouldReconnect(4001, { retryCodes: [4001] });
  void [reply, d, again];
}

void typed;
void untyped;
