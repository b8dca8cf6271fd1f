// Must compile with `tsc --noEmit --strict` (tests/test_browser_recovery.py): the
// recovery API of wsgate.js, typed and untyped clients alike.
import {
  connect,
  withSince,
  RECOVERY_EVENT,
  SINCE_PARAM,
  type Position,
  type Positions,
  type Recovery,
  type RecoveryData,
} from "../../src/wsgate/static/wsgate.js";

interface Events {
  say: { data: { text: string }; reply: null; item: never };
}
interface Pushes {
  "chat.message": { text: string };
}

declare const storage: { getItem(key: string): string | null; setItem(k: string, v: string): void };
const saved: Positions = JSON.parse(storage.getItem("positions") ?? "{}");
const client = connect<Events, Pushes>("ws://host/rooms/1", { positions: saved });
const off: () => void = client.onRecover((r: Recovery) => {
  const group: string = r.group;
  const ok: boolean = r.recovered;
  const missed: number = r.missed;
  void [group, ok, missed];
});
off();
client.on("wsgate.recovery", (data: RecoveryData) => {
  const where: Position = { offset: data.offset, epoch: data.epoch };
  void where;
});
client.on("chat.message", (m) => {
  const text: string = m.text;
  void text;
});
const now: Positions = client.positions();
storage.setItem("positions", JSON.stringify(now));
const url: string = withSince("ws://host/?a=1", now);
const names: ["wsgate.since", "wsgate.recovery"] = [SINCE_PARAM, RECOVERY_EVENT];
void [url, names];
// @ts-expect-error: a position needs an epoch
connect("ws://host/", { positions: { g: { offset: 1 } } });
// @ts-expect-error: a Recovery has no offset (RecoveryData has)
client.onRecover((r) => r.offset);

const untyped = connect("ws://host/");
untyped.onRecover(({ group, recovered, missed }) => [group, recovered, missed]);
