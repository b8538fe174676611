// The rendering the playground (web/app.js) and the admin console
// (web/console/console.js) share: decisions, reasons and what matched them,
// errors with their paths, revocations, durations and times.

/** Appends a cell with `text` (and a class) to a table row. */
export function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

/** An element with text and a class. */
export function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
}

export function providerName(provider) {
  return provider === "office365" ? "Office 365" : "Google Workspace";
}

/** An outcome for people: `no action` for `no_action`. */
export function outcomeLabel(outcome) {
  return outcome.replace("_", " ");
}

/** Fills a table's body with one row per revocation: provider, subject. */
export function fillRevocations(table, revocations) {
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const r of revocations) {
    const row = body.insertRow();
    cell(row, providerName(r.provider));
    cell(row, r.subject, "path");
  }
}

/** Fills a table's body with one row per error: code, path, message. */
export function fillErrors(table, errors) {
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const e of errors) {
    const row = body.insertRow();
    cell(row, "").append(el("span", e.code, "code"));
    cell(row, e.path || "(whole input)", "path");
    cell(row, e.message);
  }
}

/** A number of seconds for people: `4 h`, `1 d 2 h 3 min 4 s`, `0 s`. */
export function duration(seconds) {
  const parts = [[86_400, "d"], [3_600, "h"], [60, "min"], [1, "s"]].flatMap(([unit, name]) => {
    const n = Math.floor(seconds / unit);
    seconds %= unit;
    return n ? [`${n} ${name}`] : [];
  });
  return parts.length ? parts.join(" ") : "0 s";
}

const pad = (n, width = 2) => (n < 0 ? `-${String(-n).padStart(width, "0")}` : String(n).padStart(width, "0"));

/** A UTC `YYYY-MM-DDTHH:MM:SSZ` in this browser's time zone, with the zone and its offset. */
export function localTime(utc) {
  const date = new Date(utc);
  if (Number.isNaN(date.getTime())) return "—";
  const offset = -Math.trunc(date.getTimezoneOffset());
  const sign = offset < 0 ? "-" : "+";
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const day = `${pad(date.getFullYear(), 4)}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  return `${day} ${time} ${zone} (UTC${sign}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)})`;
}

/** One entry of a reason's `matched`, for people. */
export function describeMatched(m) {
  if ("grace_seconds" in m) return `grace period ${duration(m.grace_seconds)} (${m.grace_seconds} s), due ${m.due}`;
  if ("policy" in m) {
    const action = typeof m.action === "string" ? m.action : `tier ${JSON.stringify(m.action)}`;
    return `policy ${m.policy}: ${action}`;
  }
  if ("state" in m) return `device state ${m.state}`;
  if ("user" in m) return `user ${m.user}`;
  if ("deployment" in m) return `deployment ${m.deployment}`;
  return JSON.stringify(m);
}

/** A decision's reasons as list items: the rule id, its message, and what matched. */
export function reasonItems(reasons) {
  return reasons.map((r) => {
    const li = document.createElement("li");
    li.dataset.rule = r.rule;
    li.append(el("span", r.rule, "rule"), r.message);
    const matched = el("ul", undefined, "matched");
    matched.append(...r.matched.map((m) => el("li", describeMatched(m))));
    li.append(matched);
    return li;
  });
}

/** A list of warnings: each path and message. */
export function warningItems(warnings) {
  return warnings.map((w) => {
    const li = document.createElement("li");
    li.append(el("span", w.path, "path"), " — ", el("span", w.message, "msg"));
    return li;
  });
}
