// Shared by the dashboard's pages: DOM helpers, JSON over fetch, polling, the backend header, formatting.
// No framework, no CDN: plain DOM and SVG.
"use strict";

const Common = (() => {
  const params = new URLSearchParams(window.location.search);
  const refreshMs = Math.max(200, 1000 * (parseFloat(params.get("refresh")) || 1));
  const ACTIVE = new Set(["Pending", "Running", "Suspended", "ContinuedAsNew"]);
  const SVG_NS = "http://www.w3.org/2000/svg";

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== undefined && value !== null) node.setAttribute(name, String(value));
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function byId(id) {
    return document.getElementById(id);
  }

  function time(iso) {
    return iso ? iso.replace("T", " ").replace("Z", "") : "";
  }

  function json(value) {
    return value === null || value === undefined ? "—" : JSON.stringify(value, null, 2);
  }

  function badge(status, extraClass) {
    const text = status || "—";
    return el("span", text, `badge ${text}${extraClass ? " " + extraClass : ""}`);
  }

  // "in 4 s", "12 s ago", "2 min 5 s"
  function duration(seconds) {
    const s = Math.abs(seconds);
    if (s < 10) return `${s.toFixed(1)} s`;
    if (s < 120) return `${Math.round(s)} s`;
    const minutes = Math.floor(s / 60);
    if (minutes < 120) return `${minutes} min ${Math.round(s - 60 * minutes)} s`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  async function request(url, options) {
    const response = await fetch(url, { cache: "no-store", ...(options || {}) });
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = { error: `${response.status} ${response.statusText}` };
    }
    if (!response.ok) {
      const problem = new Error((body && body.error) || response.statusText);
      problem.status = response.status;
      throw problem;
    }
    return body;
  }

  function getJson(url) {
    return request(url);
  }

  // Same-origin JSON: the only kind of request the dashboard's state-changing routes accept.
  function postJson(url, payload) {
    return request(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload === undefined ? {} : payload),
    });
  }

  function showProblem(message) {
    const problem = byId("problem");
    problem.textContent = message || "";
    problem.hidden = !message;
  }

  function stamp(text) {
    byId("refreshed").textContent = text;
  }

  // Call load() now and every refreshMs until it returns false; a failure is shown, and polling goes on.
  // The function returned refreshes at once; one load runs at a time, so answers never arrive out of order.
  function poll(load) {
    let timer = null;
    let busy = false;
    let again = false;
    const tick = async () => {
      clearTimeout(timer);
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      let more = true;
      try {
        more = await load();
        showProblem(null);
      } catch (error) {
        showProblem(`Cannot refresh: ${error.message}`);
      }
      busy = false;
      if (again) {
        again = false;
        tick();
      } else if (more !== false) {
        timer = setTimeout(tick, refreshMs);
      }
    };
    tick();
    return tick;
  }

  function showBackend(backend) {
    if (!backend) return;
    byId("taskhub").textContent = backend.taskhub;
    const where = byId("backend");
    where.textContent = backend.label;
    where.title = backend.detail || "";
    where.dataset.kind = backend.kind;
  }

  // A page's view kept in its address: the values of ``defaults`` read from the query string (numbers
  // parsed, a negative offset read as 0), ``remember`` that writes the non-default ones back, and ``setView``
  // that changes some, starts again at the first page unless the offset is among them, remembers, and calls
  // ``changed``.
  function urlView(defaults, changed) {
    const url = new URL(window.location.href);
    const view = {};
    for (const [key, fallback] of Object.entries(defaults)) {
      const raw = url.searchParams.get(key);
      view[key] = typeof fallback === "number" ? parseInt(raw, 10) || fallback : raw || fallback;
    }
    if ("offset" in view) view.offset = Math.max(0, view.offset);
    function remember() {
      const next = new URL(window.location.href);
      for (const [key, value] of Object.entries(view)) {
        if (value === defaults[key]) next.searchParams.delete(key);
        else next.searchParams.set(key, value);
      }
      window.history.replaceState(null, "", next);
    }
    function setView(changes) {
      Object.assign(view, changes);
      if (!("offset" in changes)) view.offset = 0;
      remember();
      changed();
    }
    return { view, setView, remember };
  }

  // The search box, page size and previous/next buttons of a paged page, bound to its view in the URL.
  function bindPaging(view, setView) {
    const search = byId("search");
    search.value = view.q;
    let searchTimer = null;
    search.addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => setView({ q: search.value.trim() }), 200);
    });
    const size = byId("page-size");
    size.value = String(view.limit);
    size.addEventListener("change", () => setView({ limit: parseInt(size.value, 10) }));
    byId("previous").addEventListener("click", () => setView({ offset: Math.max(0, view.offset - view.limit) }));
    byId("next").addEventListener("click", () => setView({ offset: view.offset + view.limit }));
  }

  return {
    ACTIVE, refreshMs, el, svg, byId, time, json, badge, duration, getJson, postJson, showProblem, stamp,
    poll, showBackend, urlView, bindPaging,
  };
})();
