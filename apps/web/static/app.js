// The scalestack web UI: plain JavaScript against the gateway's /api, no build step. The session
// is an HttpOnly cookie set by signup and login; this script never sees the token. Two views:
// home (/) and a profile per handle (/@handle), routed on the path with the History API.
"use strict";
const $ = (s) => document.querySelector(s);

let me = null;             // the signed-in user's profile
let following = new Set(); // IDs the signed-in user follows
const liked = new Set();   // posts liked in this session (a like is idempotent on the server)
let feedLimit = 20;
let profileView = null;    // {user, next} of the profile shown

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch("/api" + path, opts);
  const text = await res.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch (e) { data = { message: text }; }
  if (!res.ok) {
    const err = new Error(data.message || res.statusText || "request failed");
    err.status = res.status;
    throw err;
  }
  return data;
}

function show(err) {
  let msg = "";
  if (err) {
    msg = String(err.message || err);
    if (err.status === 429) msg = "Slow down a little: " + msg;
    if (err.status >= 500) msg = "The service had a problem: " + msg + ". Try again in a moment.";
  }
  $("#error").textContent = msg;
}

async function busy(label, fn) {
  const status = $("#status");
  status.textContent = label + "…";
  document.body.setAttribute("aria-busy", "true");
  try { return await fn(); } finally {
    // A message the work left (e.g. "You follow @x now.") stays; only the busy label goes.
    if (status.textContent === label + "…") status.textContent = "";
    document.body.removeAttribute("aria-busy");
  }
}

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v;
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function profileLink(u) { return el("a", { href: "/@" + u.handle, "data-nav": "" }, u.display_name); }

function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

// A post: author (a link to their profile), body, time, and the like button.
function postItem(p) {
  const likeBtn = el("button", { type: "button", class: "like" });
  const render = () => {
    const on = liked.has(p.id);
    likeBtn.textContent = (on ? "Unlike" : "Like") + " · " + p.likes;
    likeBtn.setAttribute("aria-pressed", on ? "true" : "false");
    likeBtn.setAttribute("aria-label", (on ? "Unlike" : "Like") + " this post (" + plural(p.likes, "like", "likes") + ")");
  };
  likeBtn.addEventListener("click", () => act(async () => {
    const on = liked.has(p.id);
    const updated = await api(on ? "DELETE" : "PUT", "/posts/" + p.id + "/like");
    if (on) liked.delete(p.id); else liked.add(p.id);
    p.likes = updated.likes;
    render();
  }));
  render();
  const when = new Date(p.created_at);
  return el("li", { class: "post card", dataset: { id: p.id } },
    el("div", { class: "author" }, p.author ? profileLink(p.author) : "someone",
      p.author ? el("span", { class: "muted" }, " @" + p.author.handle) : null),
    el("p", { class: "body" }, p.body),
    el("div", { class: "meta" }, el("time", { datetime: when.toISOString() }, when.toLocaleString()), likeBtn));
}

function followButton(u, after) {
  const b = el("button", { type: "button", class: "follow" });
  const render = () => {
    const on = following.has(u.id);
    b.textContent = on ? "Unfollow" : "Follow";
    b.setAttribute("aria-label", (on ? "Unfollow " : "Follow ") + u.display_name + " (@" + u.handle + ")");
  };
  b.addEventListener("click", () => act(async () => {
    const on = following.has(u.id);
    await api(on ? "DELETE" : "PUT", "/users/" + u.id + "/follow");
    if (on) following.delete(u.id); else following.add(u.id);
    render();
    if (after) await after();
  }));
  render();
  return b;
}

async function act(fn) {
  show();
  try { await fn(); } catch (e) { show(e); }
}

// Home: the feed ("load more" asks for a longer page, up to the API's 100) and the people panel.
async function loadFeed() {
  const data = await api("GET", "/feed?limit=" + feedLimit);
  $("#feed").replaceChildren(...data.posts.map(postItem));
  $("#feed-empty").hidden = data.posts.length > 0;
  $("#feed-more").hidden = data.posts.length < feedLimit || feedLimit >= 100;
  $("#degraded").hidden = !(data.degraded && data.degraded.length);
}

async function loadPeople() {
  const s = await api("GET", "/suggestions").catch(() => ({ users: [] }));
  const users = s.users.filter((u) => !following.has(u.id) && (!me || u.id !== me.id));
  $("#suggestions").replaceChildren(...users.map((u) =>
    el("li", {}, el("span", {}, profileLink(u), el("span", { class: "muted" }, " @" + u.handle)), followButton(u, loadFeed))));
  $("#suggestions-empty").hidden = users.length > 0;
}

async function showHome() {
  document.title = "Home · scalestack";
  await Promise.all([loadFeed(), loadPeople()]);
  $("#home").hidden = false;
}

// A profile: who they are, their counts, their posts (paged with the API's cursor), follow.
async function showProfile(handle) {
  const u = await api("GET", "/handles/" + encodeURIComponent(handle));
  profileView = { user: u, next: null };
  document.title = u.display_name + " (@" + u.handle + ") · scalestack";
  $("#p-name").textContent = u.display_name;
  $("#p-handle").textContent = "@" + u.handle;
  $("#p-bio").textContent = u.bio || "";
  $("#p-bio").hidden = !u.bio;
  $("#p-followers").textContent = plural(u.followers, "follower", "followers");
  $("#p-following").textContent = u.following + " following";
  const slot = $("#p-follow");
  if (me && u.id !== me.id) {
    const b = followButton(u, () => refreshCounts(u.handle));
    b.id = "p-follow";
    slot.replaceWith(b);
  } else {
    slot.hidden = true;
  }
  $("#p-posts").replaceChildren();
  await morePosts();
  $("#profile").hidden = false;
}

async function refreshCounts(handle) {
  const u = await api("GET", "/handles/" + encodeURIComponent(handle));
  $("#p-followers").textContent = plural(u.followers, "follower", "followers");
}

async function morePosts() {
  const v = profileView;
  const q = "?limit=10" + (v.next ? "&before=" + v.next : "");
  const data = await api("GET", "/users/" + v.user.id + "/posts" + q);
  $("#p-posts").append(...data.posts.map(postItem));
  v.next = data.next || null;
  $("#p-more").hidden = !v.next;
  $("#p-empty").hidden = $("#p-posts").children.length > 0;
}

async function render() {
  for (const s of ["#auth", "#home", "#profile"]) $(s).hidden = true;
  const path = decodeURIComponent(location.pathname);
  await busy("Loading", async () => {
    if (path.startsWith("/@")) {
      await showProfile(path.slice(2));
      if (!me) $("#auth").hidden = false;
    } else if (me) {
      await showHome();
    } else {
      document.title = "scalestack";
      $("#auth").hidden = false;
    }
  });
}

function navigate(href) {
  history.pushState(null, "", href);
  show();
  render().catch(show);
  $("#main").focus();
}

async function signedIn() {
  me = await api("GET", "/me");
  const f = await api("GET", "/me/following").catch(() => ({ ids: [] }));
  following = new Set(f.ids);
  $("#nav").hidden = false;
  $("#my-profile").href = "/@" + me.handle;
  $("#my-profile").textContent = "@" + me.handle;
}

function form(id, fn) {
  $(id).addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(async () => {
      await busy("Working", () => fn(Object.fromEntries(new FormData(ev.target))));
      ev.target.reset();
      if (id === "#compose") $("#compose-count").textContent = "0 / 500";
    });
  });
}

form("#signup", async (f) => { await api("POST", "/signup", f); await signedIn(); navigate("/"); });
form("#login", async (f) => { await api("POST", "/login", f); await signedIn(); navigate(location.pathname); });
form("#compose", async (f) => { await api("POST", "/posts", { body: f.body }); await loadFeed(); });
form("#follow", async (f) => {
  const u = await api("GET", "/handles/" + encodeURIComponent(f.handle.trim().replace(/^@/, "")));
  await api("PUT", "/users/" + u.id + "/follow");
  following.add(u.id);
  $("#status").textContent = "You follow @" + u.handle + " now.";
  await Promise.all([loadFeed(), loadPeople()]);
});
$("#compose-body").addEventListener("input", (ev) => {
  $("#compose-count").textContent = ev.target.value.length + " / 500";
});
$("#feed-more").addEventListener("click", () => act(async () => { feedLimit = Math.min(100, feedLimit + 20); await loadFeed(); }));
$("#p-more").addEventListener("click", () => act(morePosts));
$("#logout").addEventListener("click", () => act(async () => {
  await api("POST", "/logout");
  me = null;
  following = new Set();
  $("#nav").hidden = true;
  navigate("/");
}));
document.addEventListener("click", (ev) => {
  const a = ev.target.closest("a[data-nav]");
  if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || a.origin !== location.origin) return;
  ev.preventDefault();
  navigate(a.pathname);
});
window.addEventListener("popstate", () => render().catch(show));

signedIn().catch(() => {}).finally(() => render().catch(show));
// New posts from the people you follow arrive through the fan-out: look again now and then.
// Not while the reader is on a post of it (keyboard focus there): the list would move under them.
setInterval(() => {
  if (!$("#home").hidden && !document.hidden && !$("#feed").contains(document.activeElement)) loadFeed().catch(() => {});
}, 5000);
