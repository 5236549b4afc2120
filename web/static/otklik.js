// Otklik console behaviour. No inline scripts: the Content-Security-Policy forbids them.
// Social content is never inserted as HTML here: only textContent and form values.
"use strict";

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content || "";
const i18n = () => JSON.parse(document.body.dataset.i18n || "{}");
const say = (key, name) => (i18n()[key] || key).replace("{name}", name || "");

// A submit button marked data-once sends its form once; the server also refuses a second copy
// (idempotency key), so a double click, a reload or a worker retry never posts twice.
document.addEventListener("submit", (event) => {
  const button = event.target.querySelector("button[data-once]");
  if (!button) return;
  if (button.dataset.sent) {
    event.preventDefault();
    return;
  }
  button.dataset.sent = "1";
  if (button.classList.contains("send")) button.textContent = say("sending");
});

// --- Reply box: templates and the platform's length limit, live ---------------------------
function updateCounter(textarea) {
  const box = textarea.closest(".reply-box");
  const count = box?.querySelector(".count");
  if (!count) return;
  const length = [...textarea.value].length;
  count.textContent = String(length);
  const limit = Number(textarea.dataset.limit || 0);
  const over = limit > 0 && length > limit;
  box.classList.toggle("over-limit", over);
  box.querySelector("button.send").disabled = over;
}

document.addEventListener("input", (event) => {
  if (event.target.matches(".reply-box textarea")) {
    updateCounter(event.target);
    presence.typing = true;
    if (presence.url && Date.now() - presence.lastBeat > 2000) heartbeat(presence.url).catch(() => {});
  }
});

document.addEventListener("change", (event) => {
  const select = event.target;
  if (select.matches(".template-select")) {
    const option = select.selectedOptions[0];
    const textarea = select.closest(".reply-box").querySelector("textarea");
    if (option && option.dataset.body !== undefined) {
      textarea.value = option.dataset.body;
      updateCounter(textarea);
      textarea.focus();
    }
  }
  if (select.matches(".select-all")) {
    document.querySelectorAll('tr.conversation-row input[name="ids"]').forEach((box) => {
      box.checked = select.checked;
    });
  }
});

// --- Inbox: clickable rows and keyboard selection ------------------------------------------
let selected = -1;
const rows = () => [...document.querySelectorAll("tr.conversation-row")];

function select(index) {
  const all = rows();
  if (!all.length) return;
  selected = Math.max(0, Math.min(all.length - 1, index));
  all.forEach((row, i) => row.classList.toggle("selected", i === selected));
  all[selected].scrollIntoView({ block: "nearest" });
}

function clickButton(selector) {
  const button = document.querySelector(selector);
  if (button) button.click();
  return Boolean(button);
}

// --- Shortcuts -------------------------------------------------------------------------------
let lastKey = "";
document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (target.closest("input, textarea, select, [contenteditable]")) {
    if (event.key === "Escape") target.blur();
    return;
  }
  const key = event.key;
  const page = document.body.dataset.page;
  const previous = lastKey;
  lastKey = key;
  if (previous === "g" && key === "i") return void (location.href = "/");
  if (key === "?") return toggleHelp();
  if (page === "inbox") return inboxKey(event, key);
  if (page === "conversation") return conversationKey(event, key);
});

function inboxKey(event, key) {
  const all = rows();
  if (key === "j") select(selected + 1);
  else if (key === "k") select(selected - 1);
  else if ((key === "o" || key === "Enter") && all[selected]) location.href = all[selected].dataset.href;
  else if (key === "x" && all[selected]) {
    const box = all[selected].querySelector('input[name="ids"]');
    box.checked = !box.checked;
  } else if (key === "/") {
    event.preventDefault();
    document.querySelector("#filters select, #filters input")?.focus();
  }
}

function conversationKey(event, key) {
  if (key === "n") clickButton("a.next-conversation");
  else if (key === "a") clickButton("button.assign-me");
  else if (key === "e") clickButton("button.status-resolved-button");
  else if (key === "r") {
    event.preventDefault();
    document.querySelector(".reply-box textarea")?.focus();
  }
}

function toggleHelp() {
  const help = document.getElementById("shortcuts");
  if (help) help.hidden = !help.hidden;
}

document.addEventListener("click", (event) => {
  if (event.target.closest(".help-toggle")) toggleHelp();
});

// --- Collision: who else is viewing or typing; live reply states ----------------------------
const presence = { typing: false, url: "", lastBeat: 0 };

async function heartbeat(url, leaving = false) {
  const body = JSON.stringify({ typing: presence.typing, leaving });
  presence.typing = false;
  presence.lastBeat = Date.now();
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body,
    credentials: "same-origin",
    keepalive: leaving,
  });
  if (!response.ok) return;
  const data = await response.json();
  showOthers(data.others);
  showReplyStates(data.replies);
}

// The sentence with the name in a <bdi>: a right-to-left override in a username cannot reverse
// the words around it.
function sayWithName(key, name) {
  const [before, after = ""] = (i18n()[key] || key).split("{name}");
  const isolate = document.createElement("bdi");
  isolate.textContent = name || "";
  return [before, isolate, after];
}

function showOthers(others) {
  const line = document.querySelector(".presence");
  if (!line) return;
  line.hidden = others.length === 0;
  line.replaceChildren(
    ...others.flatMap((o, i) => [
      ...(i ? [" · "] : []),
      ...sayWithName(o.typing ? "typing" : "viewing", o.username),
    ]),
  );
}

function showReplyStates(replies) {
  for (const reply of replies) {
    const item = document.querySelector(`li.reply[data-reply-id="${reply.id}"]`);
    const badge = item?.querySelector(".reply-state");
    if (badge && badge.dataset.state !== reply.state && badge.textContent !== reply.state) {
      badge.textContent = reply.state;
      badge.dataset.state = reply.state;
      item.className = `reply reply-${reply.state}`;
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const conversation = document.querySelector(".conversation[data-presence-url]");
  if (conversation) {
    const url = conversation.dataset.presenceUrl;
    presence.url = url;
    heartbeat(url).catch(() => {});
    setInterval(() => heartbeat(url).catch(() => {}), 3000);
    window.addEventListener("pagehide", () => heartbeat(url, true).catch(() => {}));
  }
  const textarea = document.querySelector(".reply-box textarea");
  if (textarea) updateCounter(textarea);
  if (document.body.dataset.page === "inbox" && rows().length) select(0);
});
