// Type checks of the presence declarations (tsc --strict, see test_presence_clients.py).
import { connect, type PresenceDiff, type PresenceEntries, type PresenceState } from "../../src/wsgate/static/wsgate.js";

interface Meta {
  user: string;
  away?: boolean;
}

const client = connect("ws://localhost/presence/lobby");
const view = client.presence<Meta>("lobby");
const entries: PresenceEntries<Meta> = view.list();
const first: string | undefined = entries["ann"]?.[0]?.user;
const offSync: () => void = view.onSync((all) => all["ann"]?.map((m) => m.user));
view.onJoin((key: string, current: Meta[], joined: Meta[]) => key + current.length + joined.length);
view.onLeave((key, current, left) => left.concat(current).map((m) => m.away));
offSync();
view.close();
// @ts-expect-error: metas are Meta
view.onJoin((key: string, current: number[]) => current);
const state: PresenceState<Meta> = { group: "lobby", entries: { ann: [{ user: "ann" }] } };
const diff: PresenceDiff = { group: "lobby", joins: {}, leaves: state.entries };
export { diff, first };
