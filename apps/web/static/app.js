// The scalestack web UI: plain JavaScript against the gateway's /api. The session is an
// HttpOnly cookie set by signup and login; this script never sees the token.
"use strict";
const $ = (s) => document.querySelector(s);

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch("/api" + path, opts);
  const text = await res.text();
  const data = text ? JSON.parse(text) : {};
  if (!res.ok) throw new Error(data.message || res.statusText);
  return data;
}

function show(err) { $("#error").textContent = err ? String(err.message || err) : ""; }

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

async function loadFeed() {
  const data = await api("GET", "/feed");
  const list = $("#feed");
  list.replaceChildren();
  for (const p of data.posts) {
    const li = el("li", "post");
    li.dataset.id = p.id;
    li.append(el("div", "author", p.author ? p.author.display_name + " @" + p.author.handle : "someone"));
    li.append(el("div", "body", p.body));
    li.append(el("div", "meta", new Date(p.created_at).toLocaleString() + " · " + p.likes + " likes"));
    list.append(li);
  }
  $("#degraded").hidden = !(data.degraded && data.degraded.length);
  const s = await api("GET", "/suggestions").catch(() => ({ users: [] }));
  const ul = $("#suggestions");
  ul.replaceChildren();
  for (const u of s.users) ul.append(el("li", "", u.display_name + " @" + u.handle + " (" + u.id + ")"));
}

async function enter() {
  const me = await api("GET", "/me");
  $("#who").textContent = me.display_name + " @" + me.handle + " (" + me.id + ")";
  $("#auth").hidden = true;
  $("#app").hidden = false;
  $("#logout").hidden = false;
  await loadFeed();
}

function form(id, fn) {
  $(id).addEventListener("submit", async (ev) => {
    ev.preventDefault();
    show();
    try {
      await fn(Object.fromEntries(new FormData(ev.target)));
      ev.target.reset();
    } catch (e) { show(e); }
  });
}

form("#signup", async (f) => { await api("POST", "/signup", f); await enter(); });
form("#login", async (f) => { await api("POST", "/login", f); await enter(); });
form("#compose", async (f) => { await api("POST", "/posts", { body: f.body }); await loadFeed(); });
form("#follow", async (f) => { await api("PUT", "/users/" + encodeURIComponent(f.handle_or_id.trim()) + "/follow"); await loadFeed(); });
$("#logout").addEventListener("click", async () => { await api("POST", "/logout"); location.reload(); });

enter().catch(() => {});
// New posts from the people you follow arrive through the fan-out: look again now and then.
setInterval(() => { if (!$("#app").hidden) loadFeed().catch(() => {}); }, 5000);
