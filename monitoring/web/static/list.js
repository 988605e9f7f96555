// The list page: a live overview, the instances (filtered, searched, sorted and paged by the server) and a
// form that starts a monitor, with the predicted checks shown before it starts.
"use strict";

const ListPage = (() => {
  const { el, svg, byId, time, badge } = Common;
  const RUNTIME_STATUSES = ["Pending", "Running", "Suspended", "Completed", "Failed", "Terminated"];
  const FINAL_STATUSES = ["Completed", "Failed", "Timeout", "Cancelled", "Terminated"];
  const COLUMNS = [
    ["instance", "Instance ID"], ["job", "Job"], ["status", "Runtime status"], [null, "Monitor"],
    [null, "Checks"], ["created", "Created (UTC)"], ["updated", "Last updated (UTC)"],
  ];
  let refresh = () => {};
  const { view, setView, remember } = Common.urlView(
    { status: "", q: "", sort: "created", order: "desc", offset: 0, limit: 25 },
    () => refresh(),
  );

  // --- overview ----------------------------------------------------------------------------------------

  function chip(label, count, status, pressed) {
    const button = el("button", null, "chip");
    button.type = "button";
    button.dataset.status = status || "";
    button.setAttribute("aria-pressed", pressed ? "true" : "false");
    button.append(badge(label, "small"), el("span", ` ${count}`, "count"));
    button.title = status ? `show only ${label} instances` : "show every instance";
    button.addEventListener("click", () => {
      byId("status-filter").value = status || "";
      setView({ status: status || "" });
    });
    return button;
  }

  function drawRate(container, series) {
    const width = Math.max(200, Math.min(420, container.clientWidth || 320));
    const height = 70;
    const bottom = 16;
    const most = Math.max(1, ...series.map((point) => point.checks));
    const slot = width / Math.max(1, series.length);
    const chart = svg("svg", { width, height, role: "img", "aria-labelledby": "rate-title", class: "rate-chart" });
    const total = series.reduce((sum, point) => sum + point.checks, 0);
    chart.append(svg("title", { id: "rate-title" }, `Checks per minute over the last ${series.length} minutes: ${series.map((p) => p.checks).join(", ")}`));
    series.forEach((point, index) => {
      const barHeight = ((height - bottom - 12) * point.checks) / most;
      const bar = svg("rect", {
        x: index * slot + 2, y: height - bottom - barHeight, width: slot - 4, height: Math.max(barHeight, 1),
        class: index === series.length - 1 ? "rate-bar current" : "rate-bar", "data-checks": point.checks,
      });
      bar.append(svg("title", {}, `${time(point.minute).slice(11, 16)} UTC: ${point.checks} check(s)`));
      chart.append(bar);
      if (point.checks > 0) {
        chart.append(svg("text", { x: index * slot + slot / 2, y: height - bottom - barHeight - 2, class: "rate-value" }, point.checks));
      }
    });
    const first = series.length ? time(series[0].minute).slice(11, 16) : "";
    chart.append(svg("text", { x: 2, y: height - 3, class: "rate-axis start" }, first));
    chart.append(svg("text", { x: width - 2, y: height - 3, class: "rate-axis end" }, "now"));
    container.replaceChildren(chart);
    return total;
  }

  function renderOverview(data) {
    Common.showBackend(data.backend);
    const byRuntime = data.byRuntimeStatus || {};
    const known = RUNTIME_STATUSES.concat(Object.keys(byRuntime).filter((s) => !RUNTIME_STATUSES.includes(s)));
    byId("runtime-counts").replaceChildren(
      chip("All", data.total, "", view.status === ""),
      ...known.map((status) => chip(status, byRuntime[status] || 0, status, view.status === status)),
    );
    const byFinal = data.byFinalStatus || {};
    byId("final-counts").replaceChildren(...FINAL_STATUSES.map((status) => {
      const item = el("li");
      item.dataset.finalStatus = status;
      item.append(badge(status, "small"), el("span", ` ${byFinal[status] || 0}`, "count"));
      return item;
    }));
    const total = drawRate(byId("rate"), data.checksPerMinute || []);
    byId("rate-total").textContent = `${total} check(s) in the last ${(data.checksPerMinute || []).length} min`;
  }

  // --- the table ---------------------------------------------------------------------------------------

  function renderHead() {
    const cells = COLUMNS.map(([key, label]) => {
      const cell = el("th");
      cell.scope = "col";
      if (!key) {
        cell.textContent = label;
        return cell;
      }
      const button = el("button", label, "sort");
      button.type = "button";
      button.dataset.sort = key;
      const active = view.sort === key;
      if (active) cell.setAttribute("aria-sort", view.order === "asc" ? "ascending" : "descending");
      button.append(el("span", active ? (view.order === "asc" ? " ▲" : " ▼") : "", "arrow"));
      button.title = `sort by ${label.toLowerCase()}`;
      button.addEventListener("click", () => {
        const order = active && view.order === "desc" ? "asc" : active ? "desc" : key === "created" || key === "updated" ? "desc" : "asc";
        setView({ sort: key, order });
      });
      cell.append(button);
      return cell;
    });
    byId("instances").querySelector("thead tr").replaceChildren(...cells);
  }

  function renderRows(data) {
    const rows = data.instances.map((instance) => {
      const row = el("tr");
      row.dataset.instanceId = instance.instanceId;
      row.dataset.runtimeStatus = instance.runtimeStatus;
      row.dataset.state = instance.state || "";
      const link = el("a", instance.instanceId);
      link.href = `/instances/${encodeURIComponent(instance.instanceId)}`;
      const idCell = el("td", null, "id");
      idCell.append(link);
      if (instance.name !== "monitoring_job_orchestrator") idCell.append(el("div", instance.name, "subtle"));
      const statusCell = el("td");
      statusCell.append(badge(instance.runtimeStatus));
      const stateCell = el("td", null, "custom-status");
      stateCell.append(badge(instance.state, "small"));
      if (instance.jobStatus && instance.jobStatus !== instance.state) {
        stateCell.append(el("span", ` job ${instance.jobStatus}`, "subtle"));
      }
      const checks = instance.checkCount === null ? "—"
        : instance.plannedChecks ? `${instance.checkCount} / ${instance.plannedChecks}` : `${instance.checkCount}`;
      row.append(
        idCell, el("td", instance.jobId || "—", "job"), statusCell, stateCell, el("td", checks, "num checks"),
        el("td", time(instance.createdTime), "when"), el("td", time(instance.lastUpdatedTime), "when updated"),
      );
      [...row.children].forEach((cell, index) => { cell.dataset.label = COLUMNS[index][1]; });
      return row;
    });
    byId("instances").querySelector("tbody").replaceChildren(...rows);
    byId("empty").hidden = rows.length > 0;
    byId("empty").textContent = data.total === 0 ? "No orchestration instances in this task hub yet."
      : "No instance matches the filter.";
    const from = data.matching === 0 ? 0 : data.offset + 1;
    const to = data.offset + data.instances.length;
    byId("page-info").textContent = `${from}–${to} of ${data.matching}` + (data.matching !== data.total ? ` (filtered from ${data.total})` : "");
    byId("previous").disabled = data.offset === 0;
    byId("next").disabled = to >= data.matching;
  }

  async function load() {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(view)) if (value !== "") query.set(key, value);
    const [overview, list] = await Promise.all([
      Common.getJson("/api/overview"), Common.getJson(`/api/instances?${query}`),
    ]);
    renderOverview(overview);
    renderHead();
    if (list.offset >= list.matching && list.matching > 0 && view.offset > 0) {
      view.offset = Math.max(0, list.matching - view.limit);
      remember();
      return true;
    }
    renderRows(list);
    Common.stamp(`refreshed ${new Date().toLocaleTimeString()} · every ${Common.refreshMs / 1000} s`);
    return true;
  }

  // --- the start form ----------------------------------------------------------------------------------

  function formPayload() {
    const payload = {};
    const form = byId("start-form");
    for (const input of form.querySelectorAll("[data-field]")) {
      const value = input.value.trim();
      if (value === "" || input.disabled) continue;
      const [field, key] = input.dataset.field.split(".");
      const typed = input.type === "number" ? Number(value) : value;
      if (key) payload[field] = { ...(payload[field] || {}), [key]: typed };
      else payload[field] = typed;
    }
    return payload;
  }

  let planTimer = null;
  let planAsked = 0; // the newest plan asked for: an older answer arriving late is dropped
  async function showPlan() {
    const out = byId("plan");
    const go = byId("start-go");
    const mine = ++planAsked;
    try {
      const plan = await Common.postJson("/api/plan", formPayload());
      if (mine !== planAsked) return;
      out.className = "plan ok";
      out.textContent = plan.text;
      out.dataset.plannedChecks = plan.planned_checks;
      out.dataset.predictedChecks = plan.predicted ? plan.predicted.checks_performed : "";
      go.disabled = false;
    } catch (error) {
      if (mine !== planAsked) return;
      out.className = "plan problem";
      out.textContent = error.message;
      out.dataset.plannedChecks = "";
      go.disabled = true;
    }
  }

  function planSoon() {
    clearTimeout(planTimer);
    planTimer = setTimeout(showPlan, 250);
  }

  async function startMonitor(event) {
    event.preventDefault();
    const result = byId("start-result");
    result.className = "result";
    result.textContent = "starting…";
    try {
      const started = await Common.postJson("/api/monitors", formPayload());
      result.className = "result ok";
      result.replaceChildren(document.createTextNode("Started "), Object.assign(el("a", started.instanceId), { href: started.url }));
      refresh();
    } catch (error) {
      result.className = "result problem";
      result.textContent = `Not started: ${error.message}`;
    }
  }

  let sources = [];

  // Show the fields the chosen job source uses (the server says which), hide and skip the others.
  function showSourceFields() {
    const chosen = sources.find((source) => source.name === byId("job-source").value);
    const fields = new Set(chosen ? chosen.fields : []);
    for (const label of byId("start-form").querySelectorAll(".source-field")) {
      const input = label.querySelector("[data-field]");
      label.hidden = !fields.has(input.dataset.field);
      input.disabled = label.hidden;
    }
  }

  async function setUpForm() {
    const options = await Common.getJson("/api/start-options");
    sources = options.sources;
    const select = byId("job-source");
    select.replaceChildren(...sources.map((source) => {
      const option = el("option", source.label);
      option.value = source.name;
      return option;
    }));
    showSourceFields();
    select.addEventListener("change", showSourceFields);
    const form = byId("start-form");
    form.addEventListener("input", planSoon);
    form.addEventListener("submit", startMonitor);
    showPlan();
  }

  function start() {
    const filter = byId("status-filter");
    filter.value = view.status;
    filter.addEventListener("change", () => setView({ status: filter.value }));
    Common.bindPaging(view, setView);
    setUpForm().catch((error) => Common.showProblem(`Cannot load the start form: ${error.message}`));
    refresh = Common.poll(load);
  }

  return { start };
})();
