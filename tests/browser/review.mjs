// One clerk's round through the review page in real headless Chromium (Debian's, driven by
// playwright-core): log in, filter to one kind, open a discrepancy, resolve it with a note,
// see it leave the open list, export the list, log out. Screenshots go to OUT.
//
// node review.mjs BASE_URL USER PASSWORD KIND OUT_DIR
import { chromium } from "playwright-core";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, user, password, kind, out] = process.argv.slice(2);
const fail = (why) => { console.error("FAILED: " + why); process.exit(1); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const context = await browser.newContext({
  viewport: { width: 1360, height: 900 }, acceptDownloads: true, locale: "zh-CN",
});
const page = await context.newPage();
const steps = [];

await page.goto(base + "/login");
await page.fill("input[name=name]", user);
await page.fill("input[name=password]", password);
await Promise.all([page.waitForURL("**/dashboard"), page.click("button[type=submit]")]);
steps.push("logged in");
await page.screenshot({ path: join(out, "dashboard.png"), fullPage: true });

await page.goto(base + "/discrepancies");
await Promise.all([page.waitForURL(new RegExp("kind=" + kind)), page.selectOption("#kind", kind)]);
const rows = await page.$$eval("a.open-item", (as) => as.map((a) => a.textContent.trim()));
if (rows.length === 0) fail("no discrepancy of kind " + kind);
const kinds = await page.$$eval("table.list tbody tr td:nth-child(2)", (tds) => [...new Set(tds.map((t) => t.textContent.trim()))]);
if (kinds.length !== 1) fail("the filtered list shows several kinds: " + kinds);
steps.push(`filtered to ${kind}: ${rows.length} rows`);

const id = rows[0];
await Promise.all([page.waitForURL("**/discrepancies/" + id), page.click(`a.open-item >> text=${id}`)]);
const differing = await page.$$eval("tr.differs", (trs) => trs.length);
await page.screenshot({ path: join(out, "detail.png"), fullPage: true });
steps.push(`opened ${id} (${differing} highlighted rows)`);

await page.fill("#resolve-form input[name=note]", "户籍系统已更正 / registry corrected");
await Promise.all([page.waitForURL("**/discrepancies"), page.click("#resolve")]);
const stillOpen = await page.$$eval("a.open-item", (as) => as.map((a) => a.textContent.trim()));
if (stillOpen.includes(id)) fail(id + " is still in the open list after resolving");
steps.push(`resolved ${id}; it left the open list`);

const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-csv")]);
const dir = mkdtempSync(join(tmpdir(), "vh-export-"));
const file = join(dir, download.suggestedFilename());
await download.saveAs(file);
const csv = readFileSync(file, "utf8").trim().split("\n");
if (!csv[0].startsWith("id,kind,period")) fail("the export has no header: " + csv[0]);
if (csv.some((l) => l.startsWith(id + ","))) fail("the export of the open list still has " + id);
steps.push(`exported ${csv.length - 1} rows to ${download.suggestedFilename()}`);

await Promise.all([page.waitForURL("**/login"), page.click("#logout")]);
await page.goto(base + "/discrepancies");
if (!page.url().endsWith("/login")) fail("after logout the list is still shown");
steps.push("logged out; the list asks for a login again");

await browser.close();
console.log(JSON.stringify({ id, steps }));
