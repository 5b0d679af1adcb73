// The developer console: be the mobile app (the app's real API), be the phones (the sandbox's inbound SMS and live
// calls), and watch Twilio's side (the sandbox's live feed). Served by ./run.sh on the app's origin; the URL's query
// names the sandbox (?sandbox=), the app's number (?number=) and the function key (?key=, when enforced).
const query = new URLSearchParams(location.search);
const SANDBOX = query.get("sandbox") || "http://127.0.0.1:8099";
const APP_NUMBER = query.get("number") || "+15005550006";
const KEY = query.get("key");
const $ = (selector) => document.querySelector(selector);
let token = null;
const sids = new Map(); // SID -> {status element, to}
const requestTo = new Map(); // sandbox REST request_id -> the number it was sent to
const callEvents = new Map(); // call SID -> its events that came before the call's panel knew its SID

/** An element with text (never parsed as HTML) and children. */
function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

async function sandbox(path, body) {
  const response = await fetch(SANDBOX + path, {method: "POST", headers: {"Content-Type": "application/json"},
                                                body: JSON.stringify(body)});
  return response.json();
}

const shellQuote = (text) => `'${text.replaceAll("'", `'"'"'`)}'`;

// -- be the mobile app ---------------------------------------------------------------------------------------------
async function signIn(sub, ttl) {
  token = (await sandbox("/_sandbox/token", {sub, ...(ttl === undefined ? {} : {ttl})})).access_token;
  $("#who").textContent = ttl < 0 ? `${sub}, with an expired token` : `signed in as ${sub}`;
}

/** Call the app's API and log request and answer as they went over the wire, with a copyable curl. */
async function callApp(path, body, idempotencyKey) {
  const headers = {"Content-Type": "application/json"};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (KEY) headers["x-functions-key"] = KEY;
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  const url = location.origin + path;
  const curl = ["curl -si -X POST", shellQuote(url), ...Object.entries(headers).map(([n, v]) => `-H ${shellQuote(`${n}: ${v}`)}`),
                ...(body ? [`-d ${shellQuote(JSON.stringify(body))}`] : [])].join(" ");
  const started = performance.now();
  const response = await fetch(url, {method: "POST", headers, body: body ? JSON.stringify(body) : undefined});
  const text = await response.text();
  const answer = text ? JSON.parse(text) : null;
  const shown = [...response.headers].filter(([name]) => /^(content-type|idempotent-replayed|retry-after|www-authenticate)$/.test(name));
  const entry = el("li", {},
    el("strong", {textContent: `POST ${path} → ${response.status}`, className: response.ok ? "" : "error"}),
    ` (${Math.round(performance.now() - started)} ms)`,
    el("pre", {textContent: `${Object.entries(headers).map(([n, v]) => `${n}: ${n === "Authorization" ? "Bearer …" : v}`).join("\n")}\n\n${body ? JSON.stringify(body) : "(no body)"}`}),
    el("pre", {textContent: `${shown.map(([n, v]) => `${n}: ${v}`).join("\n")}\n\n${JSON.stringify(answer, null, 2)}`,
               className: "answer"}),
    el("button", {textContent: "Copy curl", type: "button", onclick: () => navigator.clipboard.writeText(curl)}));
  if (idempotencyKey) {
    entry.append(" ", el("button", {textContent: "Send again with the same key", type: "button",
                                    onclick: () => callApp(path, body, idempotencyKey)}));
  }
  if (answer?.sid) {
    const status = el("span", {className: "status", textContent: answer.status});
    entry.append(el("p", {}, `${answer.sid}: `, status));
    sids.set(answer.sid, {...sids.get(answer.sid), status});
  }
  $("#requests").prepend(entry);
  return answer;
}

/** Admit a broadcast, then show its counts each second (GET /api/broadcasts/{id}, not logged) until no recipient
 * waits to be sent or for its delivery callback (a minute at most). */
async function broadcast({to, body}) {
  const numbers = to.split(",").map((number) => number.trim()).filter(Boolean);
  const admitted = await callApp("/api/broadcasts", {to: numbers, body}, crypto.randomUUID());
  const headers = {...(token ? {Authorization: `Bearer ${token}`} : {}), ...(KEY ? {"x-functions-key": KEY} : {})};
  for (let second = 0, status = admitted; admitted?.id && second < 60; second++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    status = await (await fetch(`${location.origin}/api/broadcasts/${admitted.id}`, {headers})).json();
    const counts = Object.entries(status.counts || {}).filter(([, n]) => n).map(([name, n]) => `${name} ${n}`);
    $("#counts").textContent = `${admitted.id}: ${status.status}, ${counts.join(", ")}`;
    if (status.status === "canceled" || (status.status === "done" && !status.counts.sent)) break;
  }
}

function showGrants(answer) {
  const payload = JSON.parse(atob(answer.token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  $("#grants").hidden = false;
  $("#grants").textContent = `identity ${answer.identity}, expires ${answer.expires_at}\n` +
    JSON.stringify(payload.grants, null, 2);
}

// -- be the phones --------------------------------------------------------------------------------------------------
function phone(number) {
  const id = `phone-${number.replace(/\W/g, "")}`;
  let card = document.getElementById(id);
  if (card) return card;
  const reply = el("input", {name: "reply", value: "Hi there", required: true});
  card = el("article", {id, className: "phone"},
    el("h3", {textContent: number}),
    el("ol", {className: "log thread", tabIndex: 0, ariaLabel: `Thread of ${number}`}),
    el("form", {onsubmit: (event) => { event.preventDefault(); textApp(number, reply.value); }},
       el("label", {}, "Reply", reply), el("button", {textContent: "Send"})),
    el("button", {textContent: "Call the app", type: "button", onclick: () => callTheApp(number)}),
    el("div", {className: "callpanel"}));
  $("#phones").append(card);
  return card;
}

function bubble(number, text, fromPhone) {
  const item = el("li", {className: `bubble ${fromPhone ? "from-phone" : "to-phone"}`, textContent: text});
  phone(number).querySelector(".thread").append(item);
  return item;
}

async function textApp(number, body) {
  bubble(number, body, true);
  const result = await sandbox("/_sandbox/inbound/sms", {url: `${location.origin}/api/sms_webhook`, from: number,
                                                          to: APP_NUMBER, body});
  const replies = result.twiml ? new DOMParser().parseFromString(result.twiml, "text/xml").querySelectorAll("Message") : [];
  replies.forEach((message) => bubble(number, `App replied: ${message.textContent.trim()}`, false));
  if (result.twilio_error) bubble(number, `Twilio error ${result.twilio_error.code}: ${result.twilio_error.message}`, false);
}

async function callTheApp(number) {
  const panel = phone(number).querySelector(".callpanel");
  panel.replaceChildren(el("p", {textContent: "Calling the app…"}));
  const {sid} = await sandbox("/_sandbox/inbound/call", {url: `${location.origin}/api/voice_webhook`, from: number,
                                                         to: APP_NUMBER, live: true});
  panel.dataset.sid = sid;
  (callEvents.get(sid) || []).forEach(callEvent); // those the feed brought before the sandbox's answer
}

const saidIn = (twiml) => [...new DOMParser().parseFromString(twiml, "text/xml").querySelectorAll("Say")]
  .map((say) => say.textContent.trim());

function answerButtons(sid, waiting) {
  const answer = (value) => sandbox(`/_sandbox/calls/${sid}/answer`, {value});
  if (waiting === "digits") {
    return el("div", {className: "keypad", role: "group", ariaLabel: "Keypad"},
      ..."123456789*0#".split("").map((key) => el("button", {type: "button", textContent: key, onclick: () => answer(key)})),
      el("button", {type: "button", textContent: "Press nothing", onclick: () => answer("")}));
  }
  const choices = waiting === "dial" ? [["Answered", "completed"], ["Busy", "busy"], ["No answer", "no-answer"]]
    : [["Leave a voicemail", true], ["Hang up without one", false]];
  return el("div", {role: "group", ariaLabel: waiting === "dial" ? "Dial outcome" : "Voicemail"},
    ...choices.map(([label, value]) => el("button", {type: "button", textContent: label, onclick: () => answer(value)})));
}

function callEvent(event) {
  if (!["call.step", "call.waiting", "inbound.call"].includes(event.type)) return;
  const panel = document.querySelector(`.callpanel[data-sid="${event.sid}"]`);
  if (!panel) return callEvents.set(event.sid, [...(callEvents.get(event.sid) || []), event]);
  panel.querySelector(".waiting")?.remove();
  if (event.type === "call.step") {
    const said = event.twiml ? saidIn(event.twiml) : [];
    panel.append(el("p", {textContent: `Step ${event.step}: ${event.url.split("?")[0]} → ${event.status}`}),
                 el("pre", {textContent: event.twiml || errorLine(event)}),
                 ...said.map((text) => el("p", {textContent: `App said: ${text}`})));
  } else if (event.type === "call.waiting") {
    panel.append(el("div", {className: "waiting"}, answerButtons(event.sid, event.waiting)));
  } else if (event.type === "inbound.call") {
    panel.append(el("p", {className: "status", textContent: `Call ended (${event.ended})`}));
  }
}

// -- Twilio's side ----------------------------------------------------------------------------------------------------
const errorLine = (event) => {
  const error = event.twilio_error || (event.body && event.body.code ? event.body : null);
  return error ? `Twilio error ${error.code}: ${error.message}${error.detail ? ` (${error.detail})` : ""}` : "";
};
const kindOf = (type) => type.startsWith("rest.") ? "rest" : type === "status_callback" || type === "inbound.sms" ? "webhook" : "call";

function summary(event) {
  const path = event.path || event.url || "";
  const parts = [event.time.slice(11, 23), event.type, event.method, path.split("?")[0], event.status ?? event.kind];
  if (event.ms !== undefined) parts.push(`${event.ms} ms`);
  if (event.resource_status) parts.push(event.resource_status);
  if (event.signature) parts.push(`signed ${event.signature.slice(0, 10)}…`);
  if (event.error) parts.push(event.error);
  return parts.filter((part) => part !== undefined && part !== null && part !== "").join(" · ");
}

function followPhones(event) {
  const form = event.form || {};
  if (event.type === "rest.request" && event.method === "POST" && form.To) {
    requestTo.set(event.request_id, form.To[0]);
    if (event.path.endsWith("/Messages.json")) bubble(form.To[0], form.Body?.[0] || "(media)", false).dataset.request = event.request_id;
  }
  if (event.type === "rest.response" && event.body?.sid && requestTo.has(event.request_id)) {
    const item = document.querySelector(`[data-request="${event.request_id}"]`);
    const status = el("span", {className: "status", textContent: ` ${event.body.status}`});
    item?.append(status);
    sids.set(event.body.sid, {...sids.get(event.body.sid), to: requestTo.get(event.request_id), thread: status});
  }
  const known = sids.get(event.sid) || sids.get(event.call_sid);
  if (event.type === "status_callback" && known) {
    for (const target of [known.status, known.thread]) if (target) target.textContent = ` ${event.resource_status}`;
  }
  if (event.type === "call.webhook" && known?.to) {
    bubble(known.to, event.twiml ? `Heard: ${saidIn(event.twiml).join(" ")}` : errorLine(event), false);
  }
}

function showEvent(event) {
  followPhones(event);
  callEvent(event);
  const problem = errorLine(event);
  const item = el("li", {}, summary(event), problem ? el("div", {className: "error", textContent: problem}) : null);
  Object.assign(item.dataset, {kind: kindOf(event.type), text: JSON.stringify(event)});
  filter(item);
  $("#feed").prepend(item);
}

function filter(item) {
  const kind = $("#kind").value, number = $("#number").value.trim();
  item.hidden = Boolean((kind && item.dataset.kind !== kind) || (number && !item.dataset.text.includes(number)));
}

async function arm(fault) {
  const response = await fetch(`${SANDBOX}/_sandbox/faults`, {method: fault ? "POST" : "DELETE",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify(fault || {})});
  const faults = await (await fetch(`${SANDBOX}/_sandbox/faults`)).json();
  $("#armed").textContent = response.ok ? `armed: ${faults.map((f) => f.kind).join(", ") || "none"}` : "refused";
}

// -- wiring -----------------------------------------------------------------------------------------------------------
const onSubmit = (selector, handler) => $(selector).addEventListener("submit", (event) => {
  event.preventDefault();
  handler(Object.fromEntries(new FormData(event.target)));
});
onSubmit("#signin", ({sub}) => signIn(sub));
onSubmit("#sms", (body) => callApp("/api/send_sms", body, crypto.randomUUID()));
onSubmit("#call", (body) => callApp("/api/make_call", body, crypto.randomUUID()));
onSubmit("#newphone", ({number}) => phone(number));
onSubmit("#broadcast", broadcast);
$("#expired").addEventListener("click", () => signIn(new FormData($("#signin")).get("sub"), -60));
$("#token").addEventListener("click", async () => {
  const answer = await callApp("/api/voice_token");
  if (answer?.token) showGrants(answer);
});
document.querySelectorAll("[data-fault]").forEach((button) => button.addEventListener("click",
  () => arm(JSON.parse(button.dataset.fault))));
$("#clear").addEventListener("click", () => arm(null));
$("#shuffled").addEventListener("change", (event) => sandbox("/_sandbox/callbacks", {shuffled: event.target.checked}));
for (const control of [$("#kind"), $("#number")]) {
  control.addEventListener("input", () => $("#feed").querySelectorAll("li").forEach(filter));
}
new EventSource(`${SANDBOX}/_sandbox/events`).onmessage = (message) => showEvent(JSON.parse(message.data));
document.body.dataset.ready = "true";
