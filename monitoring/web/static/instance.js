// The instance page: a status card, the control buttons, the timeline picture and the table in time order.
"use strict";

const InstancePage = (() => {
  const { el, byId, time, json, badge, duration } = Common;
  const instanceId = (() => {
    const raw = window.location.pathname.split("/").pop();
    try {
      return decodeURIComponent(raw);
    } catch (error) {
      return raw; // a malformed address: ask for it as written, and the answer says it does not exist
    }
  })();
  let latest = null; // the last answer of /api/instances/{id}
  let skewMs = 0; // browser clock minus server clock
  let refresh = () => {};
  let pendingAction = null;

  function serverNow() {
    return Date.now() - skewMs;
  }

  function tile(id, label, value, note) {
    const box = el("div", null, "tile");
    box.id = id;
    box.append(el("div", label, "tile-label"));
    const shown = el("div", null, "tile-value");
    if (value instanceof Node) shown.append(value);
    else shown.textContent = value;
    box.append(shown);
    if (note) box.append(el("div", note, "tile-note"));
    return box;
  }

  function checksTile(card) {
    if (card.check_count === null) return tile("card-checks", "Checks", "—");
    // Of the predicted total when the job is simulated; else the schedule gives only the most there can be.
    const total = card.predicted_checks;
    const text = total ? `check ${card.check_count} of ${total}` : `check ${card.check_count}`;
    let note = card.planned_checks ? `${card.planned_checks} at most (at the deadline)` : null;
    if (total) {
      note = `predicted: ${total}, ${card.predicted_final_status}` +
        (total !== card.planned_checks ? `; ${card.planned_checks} at most` : "");
    }
    const box = tile("card-checks", "Checks", text, note);
    const scale = total || card.planned_checks;
    if (scale) {
      const bar = el("progress");
      bar.max = scale;
      bar.value = Math.min(card.check_count, scale);
      bar.setAttribute("aria-label", text);
      box.append(bar);
    }
    return box;
  }

  function countdown(iso, ended, suspended) {
    if (ended) return { text: "—", note: "ended" };
    if (!iso) return { text: "—", note: null };
    const left = (Date.parse(iso) - serverNow()) / 1000;
    if (suspended) return { text: "paused", note: "suspended: no checks until resumed" };
    if (left >= 0) return { text: `in ${duration(left)}`, note: time(iso) };
    if (left > -1) return { text: "due now", note: time(iso) };
    return { text: `overdue ${duration(left)}`, note: time(iso) };
  }

  function renderCard() {
    if (!latest) return;
    const card = latest.card;
    const status = latest.instance.runtimeStatus;
    const ended = !Common.ACTIVE.has(status);
    const suspended = status === "Suspended";
    const next = countdown(card.next_check_time, ended || card.final_status, suspended);
    let left = { text: "—", note: null };
    if (card.deadline) {
      const seconds = (Date.parse(card.deadline) - serverNow()) / 1000;
      left = ended ? { text: "—", note: `deadline was ${time(card.deadline)}` }
        : seconds >= 0 ? { text: `${duration(seconds)} left`, note: time(card.deadline) }
          : { text: "passed", note: `${duration(seconds)} ago` };
    }
    const tiles = [
      tile("card-job", "Job status", badge(card.job_status), card.job_id ? `job ${card.job_id}` : null),
      tile("card-state", "Monitor", badge(card.state), card.generation > 1 ? `generation ${card.generation}` : null),
      checksTile(card),
      tile("card-next", "Next check", next.text, next.note),
      tile("card-deadline", "Time left to the deadline", left.text, left.note),
    ];
    byId("card").replaceChildren(...tiles);
    const notes = [];
    if (card.reason) notes.push(`Reason: ${card.reason}`);
    if (card.last_error) {
      const retrying = card.state === "Retrying";
      notes.push(`${retrying ? "Retrying after" : "An earlier attempt failed (retried)"}: ${card.last_error}`);
    }
    if (card.note) notes.push(card.note);
    byId("card-notes").textContent = notes.join(" · ");
    byId("card-notes").hidden = notes.length === 0;
  }

  function renderActions(actions) {
    const bar = byId("actions");
    const buttons = actions.map((action) => {
      const button = el("button", action.label, `action action-${action.name}`);
      button.type = "button";
      button.dataset.action = action.name;
      button.disabled = !action.enabled;
      button.title = action.why;
      button.addEventListener("click", () => confirmAction(action));
      return button;
    });
    // Keep focus where it was if the same button is still there.
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.action : null;
    bar.replaceChildren(...buttons);
    // Disabled buttons cannot take focus, so say in plain text why they are off.
    const off = actions.filter((action) => !action.enabled).map((action) => `${action.label} (${action.when})`);
    byId("actions-why").textContent = off.length ? `Not for this instance now: ${off.join(", ")}.` : "";
    if (focused) {
      const again = bar.querySelector(`[data-action='${focused}']`);
      if (again && !again.disabled) again.focus();
    }
  }

  function confirmAction(action) {
    pendingAction = action;
    const dialog = byId("confirm");
    byId("confirm-title").textContent = `${action.label} this instance?`;
    byId("confirm-text").textContent = action.confirm;
    byId("confirm-reason-row").hidden = !action.takes_reason;
    byId("confirm-reason").value = "";
    const go = byId("confirm-go");
    go.textContent = action.label;
    go.className = `action action-${action.name}`;
    dialog.returnValue = ""; // else Escape would close it with the last confirmation's "go"
    dialog.showModal();
    (action.takes_reason ? byId("confirm-reason") : go).focus();
  }

  async function runAction() {
    const action = pendingAction;
    if (!action) return;
    const result = byId("action-result");
    const reason = byId("confirm-reason").value.trim();
    result.className = "result";
    result.textContent = `${action.label}: sending…`;
    try {
      const body = await Common.postJson(
        `/api/instances/${encodeURIComponent(instanceId)}/${action.name}`, reason ? { reason } : {},
      );
      result.className = "result ok";
      result.textContent = `${action.label}: ${body.message}`;
      if (action.name === "purge") {
        byId("purged").hidden = false;
        return;
      }
    } catch (error) {
      result.className = "result problem";
      result.textContent = `${action.label} refused: ${error.message}`;
    }
    refresh();
  }

  function renderTable(entries, start, ended) {
    const rows = entries.map((entry) => {
      const row = el("tr");
      row.className = "kind-" + entry.kind;
      row.dataset.kind = entry.kind;
      row.dataset.at = entry.at || "";
      const offset = entry.at ? ((Date.parse(entry.at) - start) / 1000).toFixed(2) : "";
      let detail = entry.detail || "";
      if (entry.kind === "timer" && entry.since) {
        const created = ((Date.parse(entry.since) - start) / 1000).toFixed(2);
        detail = `created +${created} s${detail ? "; " + detail : ""}`;
      }
      const statusCell = el("td");
      const neverFired = ended && entry.kind === "timer" && entry.status === "pending";
      if (entry.status) statusCell.append(badge(neverFired ? "never fired" : entry.status, "small"));
      row.append(el("td", time(entry.at)), el("td", offset, "num"), el("td", entry.label), statusCell, el("td", detail));
      return row;
    });
    document.querySelector("#timeline tbody").replaceChildren(...rows);
  }

  function drawChart() {
    if (!latest) return;
    const { card, instance, timeline, endedAt } = latest;
    const start = Date.parse(card.started_at || instance.createdTime);
    const summary = Timeline.draw(byId("chart"), {
      start,
      deadline: card.deadline ? Date.parse(card.deadline) : null,
      end: endedAt ? Date.parse(endedAt) : null,
      now: serverNow(),
      next: card.next_check_time && !endedAt ? Date.parse(card.next_check_time) : null,
      entries: timeline,
    });
    byId("timeline-summary").textContent = summary;
    return start;
  }

  // The orchestration that started this one, and the sub-orchestrations it started (with their status).
  function renderFamily(data) {
    const parent = byId("parent");
    byId("parent-row").hidden = !data.parent;
    parent.textContent = data.parent || "";
    if (data.parent) parent.href = `/instances/${encodeURIComponent(data.parent)}`;
    const children = data.children || [];
    byId("children-section").hidden = children.length === 0;
    // Rebuilt only when a child or its status changed: a list replaced on every refresh loses the click
    // of someone (or a test) choosing a child while it is replaced.
    const list = byId("children");
    const shown = JSON.stringify(children.map((child) => [child.instanceId, child.runtimeStatus || "purged"]));
    if (list.dataset.shown !== shown) {
      list.dataset.shown = shown;
      list.replaceChildren(...children.map((child) => {
        const item = el("li");
        item.dataset.instanceId = child.instanceId;
        const link = el("a", child.instanceId);
        link.href = `/instances/${encodeURIComponent(child.instanceId)}`;
        item.append(link, " ", badge(child.runtimeStatus || "purged", "small"));
        return item;
      }));
    }
    const count = data.childCount || children.length;
    const counts = {};
    for (const child of children) counts[child.runtimeStatus || "purged"] = (counts[child.runtimeStatus || "purged"] || 0) + 1;
    const parts = Object.entries(counts).map(([status, n]) => `${n} ${status}`);
    byId("children-summary").textContent = `${count} sub-orchestration(s): ${parts.join(", ")}` +
      (count > children.length ? ` (the first ${children.length} shown)` : "");
  }

  async function load() {
    let data;
    try {
      data = await Common.getJson(`/api/instances/${encodeURIComponent(instanceId)}`);
    } catch (error) {
      if (error.status === 404) {
        byId("purged").hidden = false;
        byId("status").textContent = "not found";
        Common.stamp("this instance does not exist (any more) in this task hub");
        renderActions([]);
        return false;
      }
      throw error;
    }
    latest = data;
    skewMs = Date.now() - Date.parse(data.now);
    const instance = data.instance;
    Common.showBackend(data.backend);
    byId("name").textContent = instance.name;
    const status = byId("status");
    status.textContent = instance.runtimeStatus;
    status.className = "badge " + instance.runtimeStatus;
    byId("created").textContent = time(instance.createdTime);
    byId("updated").textContent = time(instance.lastUpdatedTime);
    byId("input").textContent = json(instance.input);
    byId("custom-status").textContent = json(instance.customStatus);
    byId("output").textContent = json(instance.output);
    renderFamily(data);
    renderCard();
    renderActions(data.actions);
    const start = drawChart();
    renderTable(data.timeline, start, Boolean(data.endedAt));
    const note = byId("generation-note");
    note.textContent = data.card.generation > 1
      ? `Generation ${data.card.generation}: the history (and so this picture) holds this generation's checks only; ` +
        "the earlier ones were replaced by continue-as-new."
      : "";
    note.hidden = !note.textContent;
    const active = Common.ACTIVE.has(instance.runtimeStatus);
    Common.stamp(active ? `live · refreshed ${new Date().toLocaleTimeString()}` : `finished: ${instance.runtimeStatus}`);
    return active;
  }

  function start() {
    byId("instance-id").textContent = instanceId;
    document.title = `${instanceId} · Durable monitoring dashboard`;
    Timeline.legend(byId("legend"));
    byId("confirm").addEventListener("close", () => {
      if (byId("confirm").returnValue === "go") runAction();
      pendingAction = null;
    });
    refresh = Common.poll(load);
    setInterval(renderCard, 500); // countdowns between refreshes
    let width = 0;
    window.addEventListener("resize", () => {
      const now = byId("chart").clientWidth;
      if (now !== width) {
        width = now;
        drawChart();
      }
    });
  }

  return { start };
})();
