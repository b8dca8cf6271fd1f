// The official Socket.IO Admin UI (its static build from @socket.io/admin-ui, served by
// tests/apps/socketio_admin.py at /admin-ui/) in Debian's Chromium, driven by
// playwright-core, against a wsgate server with instrument(). Started by
// tests/test_browser_admin.py:
//
//   node tests/browser/admin_ui.mjs HTTP_BASE_URL SCREENSHOT_DIR USERNAME PASSWORD
//
// A socket.io-client socket connects (joining "lobby"); the UI refuses a wrong password,
// logs in, lists the server and the socket (transport, rooms), makes it join a room,
// and its "disconnect" button disconnects the socket. Prints {"result": {...}} with what it observed; any
// failed wait throws (exit status 1) saying what was awaited.
import { mkdirSync } from "node:fs";
import { join } from "node:path";

import { chromium } from "playwright-core";
import { io } from "socket.io-client";

const [base, shots, username, password] = process.argv.slice(2);
const WAIT = 15000;
mkdirSync(shots, { recursive: true });

const result = { consoleErrors: [] };
const browser = await chromium.launch({
  executablePath: process.env.WSGATE_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-US" });
  // The UI's page links fonts and icons from CDNs: nothing leaves this machine.
  const local = new URL(base).host;
  await context.route("**/*", (route) =>
    new URL(route.request().url()).host === local ? route.continue() : route.abort(),
  );
  const page = await context.newPage();
  page.on("console", (msg) => {
    // The blocked CDN requests are reported as failed loads; anything else is an error.
    if (msg.type() === "error" && !/Failed to load resource/.test(msg.text())) {
      result.consoleErrors.push(msg.text());
    }
  });
  page.on("pageerror", (error) => result.consoleErrors.push(error.message));

  async function waitFor(what, fn, arg) {
    try {
      await page.waitForFunction(fn, arg, { timeout: WAIT });
    } catch (error) {
      const text = await page.innerText("body").catch(() => "");
      throw new Error(`waiting for ${what}: ${error.message}\npage: ${text.slice(0, 2000)}`);
    }
  }
  const bodyHas = (what, text) =>
    waitFor(what, (t) => document.body.innerText.includes(t), text);

  // A user of the app, with the official client (polling, then the upgrade).
  const user = io(base, { auth: { room: "lobby" }, reconnection: false });
  await new Promise((resolve, reject) => {
    user.once("connect", resolve);
    user.once("connect_error", reject);
  });
  const sid = user.id;
  result.sid = sid;
  const disconnected = new Promise((resolve) => user.once("disconnect", resolve));

  // The login form: a wrong password first.
  await page.goto(`${base}/admin-ui/`);
  await page.getByLabel("Server URL").fill(base);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill("not-the-password");
  await page.getByRole("button", { name: "Connect" }).click();
  await bodyHas("the UI to say the credentials are wrong", "Invalid credentials");
  result.refused = true;
  await page.screenshot({ path: join(shots, "0-refused.png") });
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Connect" }).click();
  await waitFor("the UI to be connected", () =>
    [...document.querySelectorAll(".v-chip__content")].some((c) => c.textContent.trim() === "connected"),
  );
  await waitFor("the dashboard's namespaces", () => document.body.innerText.includes("/other"));
  await page.screenshot({ path: join(shots, "1-dashboard.png") });

  // The servers page: this server, healthy.
  await page.goto(`${base}/admin-ui/#/servers/`);
  await waitFor("the server row", () =>
    [...document.querySelectorAll("tbody tr")].some((r) => /wsgate-test/.test(r.innerText) && /healthy/i.test(r.innerText)),
  );
  result.serverRow = (await page.locator("tbody tr", { hasText: "wsgate-test" }).innerText()).split("\t").map((s) => s.trim()).filter(Boolean);
  await page.screenshot({ path: join(shots, "2-servers.png") });

  // The sockets page: the user's socket and its transport.
  await page.goto(`${base}/admin-ui/#/sockets/`);
  await waitFor("the socket in the list", (id) => document.body.innerText.includes(id), sid);
  result.socketRow = (await page.locator("tbody tr", { hasText: sid }).innerText()).split("\t").map((s) => s.trim()).filter(Boolean);
  await page.screenshot({ path: join(shots, "3-sockets.png") });

  // The socket's page: its rooms; then its "disconnect" button (Socket section).
  await page.goto(`${base}/admin-ui/#/n/%2F/sockets/${sid}`);
  await bodyHas("the socket's rooms", "lobby");
  const main = await page.innerText("main");
  const rooms = main.slice(main.indexOf("Rooms"));
  result.rooms = [sid, "lobby", "kitchen"].filter((r) => rooms.includes(r));
  result.transportShown = /Transport\s+WebSocket/.test(main) ? "WebSocket" : /Transport\s+HTTP long-polling/.test(main) ? "HTTP long-polling" : null;
  // "Join a room" on that page: the server makes the socket join, the UI lists it.
  await page.getByLabel("Join a room").fill("kitchen");
  await page.locator("main form button").click();
  await waitFor("the joined room in the list", () => {
    const text = document.querySelector("main").innerText;
    return text.slice(text.indexOf("Rooms")).includes("kitchen");
  });
  result.roomsOnServer = await user.timeout(WAIT).emitWithAck("rooms");
  await page.screenshot({ path: join(shots, "4-socket.png"), fullPage: true });
  const socketSection = page.locator("table tr", { hasText: "Status" }).nth(1);
  await socketSection.locator("button").click();
  result.disconnectReason = await Promise.race([
    disconnected,
    new Promise((_, reject) => setTimeout(() => reject(new Error("the socket was not disconnected")), WAIT)),
  ]);
  await waitFor("the UI to show the socket disconnected", () =>
    [...document.querySelectorAll(".v-chip__content")].some((c) => c.textContent.trim() === "disconnected"),
  );
  await page.screenshot({ path: join(shots, "5-disconnected.png"), fullPage: true });
  await page.goto(`${base}/admin-ui/#/sockets/`);
  await waitFor("the socket to leave the list", (id) => !document.body.innerText.includes(id), sid);
  result.gone = true;
} finally {
  await browser.close();
}
console.log(JSON.stringify({ result }));
process.exit(0);
