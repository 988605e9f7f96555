// The dashboard's two pages: they poll the dashboard's JSON routes and redraw. No framework, no CDN.
"use strict";

const Dashboard = (() => {
  const params = new URLSearchParams(window.location.search);
  const refreshMs = Math.max(200, 1000 * (parseFloat(params.get("refresh")) || 1));
  const ACTIVE = new Set(["Pending", "Running", "Suspended"]);

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function time(iso) {
    return iso ? iso.replace("T", " ").replace("Z", "") : "";
  }

  function json(value) {
    return value === null || value === undefined ? "—" : JSON.stringify(value, null, 2);
  }

  function badge(status) {
    return el("span", status, "badge " + status);
  }

  function describeCustomStatus(custom) {
    if (custom === null || custom === undefined) return "";
    if (typeof custom === "object" && "check_count" in custom && "status" in custom) {
      let text = `${custom.job_id}: ${custom.status}, checks ${custom.check_count}`;
      if (custom.final_status) text += ` → ${custom.final_status}`;
      else if (custom.next_check_time) text += `, next ${time(custom.next_check_time).slice(11)}`;
      return text;
    }
    return JSON.stringify(custom);
  }

  async function getJson(url) {
    const response = await fetch(url, { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  function showProblem(message) {
    const problem = document.getElementById("problem");
    problem.textContent = message || "";
    problem.hidden = !message;
  }

  function stamp(text) {
    document.getElementById("refreshed").textContent = text;
  }

  function poll(load) {
    const tick = async () => {
      let again = true;
      try {
        again = await load();
        showProblem(null);
      } catch (error) {
        showProblem(`Cannot refresh: ${error.message}`);
      }
      if (again !== false) setTimeout(tick, refreshMs);
    };
    tick();
  }

  function listPage() {
    poll(async () => {
      const data = await getJson("/api/instances");
      document.getElementById("taskhub").textContent = data.taskhub;
      document.getElementById("backend").textContent = `(${data.backend})`;
      const rows = data.instances.map((instance) => {
        const row = el("tr");
        row.dataset.instanceId = instance.instanceId;
        row.dataset.runtimeStatus = instance.runtimeStatus;
        const link = el("a", instance.instanceId);
        link.href = `/instances/${encodeURIComponent(instance.instanceId)}`;
        const idCell = el("td");
        idCell.append(link);
        const statusCell = el("td");
        statusCell.append(badge(instance.runtimeStatus));
        row.append(
          el("td", instance.name), idCell, statusCell,
          el("td", describeCustomStatus(instance.customStatus), "custom-status"),
          el("td", time(instance.createdTime)), el("td", time(instance.lastUpdatedTime)),
        );
        return row;
      });
      document.querySelector("#instances tbody").replaceChildren(...rows);
      document.getElementById("empty").hidden = rows.length > 0;
      stamp(`${rows.length} instance(s) · refreshed ${new Date().toLocaleTimeString()} · every ${refreshMs / 1000} s`);
      return true;
    });
  }

  function instancePage() {
    const instanceId = decodeURIComponent(window.location.pathname.split("/").pop());
    document.getElementById("instance-id").textContent = instanceId;
    document.title = `${instanceId} · Durable monitoring dashboard`;
    poll(async () => {
      const data = await getJson(`/api/instances/${encodeURIComponent(instanceId)}`);
      const instance = data.instance;
      document.getElementById("taskhub").textContent = data.taskhub;
      document.getElementById("name").textContent = instance.name;
      const status = document.getElementById("status");
      status.textContent = instance.runtimeStatus;
      status.className = "badge " + instance.runtimeStatus;
      document.getElementById("created").textContent = time(instance.createdTime);
      document.getElementById("updated").textContent = time(instance.lastUpdatedTime);
      document.getElementById("input").textContent = json(instance.input);
      document.getElementById("custom-status").textContent = json(instance.customStatus);
      document.getElementById("output").textContent = json(instance.output);
      const start = Date.parse(instance.createdTime);
      const rows = data.timeline.map((entry) => {
        const row = el("tr");
        row.className = "kind-" + entry.kind;
        row.dataset.kind = entry.kind;
        const offset = entry.at ? ((Date.parse(entry.at) - start) / 1000).toFixed(2) : "";
        row.append(
          el("td", time(entry.at)), el("td", offset), el("td", entry.label),
          el("td", entry.status), el("td", entry.detail),
        );
        return row;
      });
      document.querySelector("#timeline tbody").replaceChildren(...rows);
      const checks = data.timeline.filter((e) => e.kind === "check" || e.kind === "check-failed").length;
      const timers = data.timeline.filter((e) => e.kind === "timer").length;
      document.getElementById("timeline-summary").textContent = `${checks} check(s), ${timers} timer(s)`;
      const active = ACTIVE.has(instance.runtimeStatus);
      stamp(active ? `live · refreshed ${new Date().toLocaleTimeString()}` : `finished: ${instance.runtimeStatus}`);
      return active;
    });
  }

  return { listPage, instancePage };
})();
