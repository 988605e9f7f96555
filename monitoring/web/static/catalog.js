// The entities and schedules pages: one table each, searched by prefix and paged by the server, refreshed
// like the list. Every value is user data (an entity's state above all): it is set as text, never as HTML.
"use strict";

const CatalogPage = (() => {
  const { el, byId, time, badge, duration } = Common;

  function instanceLink(instanceId) {
    const link = el("a", instanceId);
    link.href = `/instances/${encodeURIComponent(instanceId)}`;
    return link;
  }

  function cell(value, className) {
    const node = el("td", null, className);
    if (value instanceof Node) node.append(value);
    else node.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
    return node;
  }

  // When: the time, and how far from now it is ("in 4 s", "12 s ago").
  function when(iso) {
    if (!iso) return cell("—", "when");
    const node = cell(time(iso), "when");
    const seconds = (Date.parse(iso) - Date.now()) / 1000;
    node.append(el("div", seconds >= 0 ? `in ${duration(seconds)}` : `${duration(seconds)} ago`, "subtle"));
    return node;
  }

  const KINDS = {
    entities: {
      route: "/api/entities",
      field: "entities",
      about: "Durable entities with state. The state is the entity's JSON, cut to 200 characters.",
      none: "No entities with state in this task hub yet.",
      unmatched: "No entity's name starts so.",
      columns: [
        ["Entity ID", (row) => {
          const node = cell(row.id, "id");
          if (row.isSchedule) node.append(el("div", "a schedule (see Schedules)", "subtle"));
          return node;
        }],
        ["Name", (row) => cell(row.name)],
        ["Key", (row) => cell(row.key, "id")],
        ["Last modified (UTC)", (row) => when(row.lastModified)],
        ["Backlog", (row) => cell(row.backlog, "num")],
        ["Locked by", (row) => cell(row.lockedBy ? instanceLink(row.lockedBy) : "—", "id")],
        ["State", (row) => {
          const node = el("td", null, "state");
          const code = el("code", row.state === null ? "—" : row.state);
          if (row.stateLength > (row.state || "").length) code.title = `${row.stateLength} characters in all`;
          node.append(code);
          return node;
        }],
      ],
    },
    schedules: {
      route: "/api/schedules",
      field: "schedules",
      about: "Schedules of the SDK (durabletask.scheduled): each starts its orchestration every interval.",
      none: "No schedules in this task hub yet.",
      unmatched: "No schedule's id starts so.",
      columns: [
        ["Schedule ID", (row) => cell(row.id, "id")],
        ["Orchestration", (row) => cell(row.orchestrationName)],
        ["Every", (row) => cell(row.intervalSeconds === null ? null : duration(row.intervalSeconds), "num")],
        ["Status", (row) => {
          const node = cell(badge(row.status, "small"));
          if (row.problem) node.append(el("div", row.problem, "subtle"));
          return node;
        }],
        ["Last run (UTC)", (row) => when(row.lastRunAt)],
        ["Next run (UTC)", (row) => when(row.nextRunAt)],
        ["Runs", (row) => {
          const link = el("a", "its instances");
          link.href = `/?q=${encodeURIComponent(row.id + "-")}`;
          return cell(link);
        }],
      ],
    },
  };

  let kind = null;
  let refresh = () => {};
  const { view, setView, remember } = Common.urlView({ q: "", offset: 0, limit: 25 }, () => refresh());

  function render(data) {
    Common.showBackend(data.backend);
    const rows = data[kind.field].map((item) => {
      const row = el("tr");
      row.dataset.id = item.id;
      row.append(...kind.columns.map(([label, draw]) => {
        const node = draw(item);
        node.dataset.label = label;
        return node;
      }));
      return row;
    });
    byId("rows").querySelector("tbody").replaceChildren(...rows);
    byId("empty").hidden = rows.length > 0;
    byId("empty").textContent = view.q ? kind.unmatched : kind.none;
    const from = data.matching === 0 ? 0 : data.offset + 1;
    const to = data.offset + rows.length;
    byId("page-info").textContent = `${from}–${to} of ${data.matching}`;
    byId("previous").disabled = data.offset === 0;
    byId("next").disabled = to >= data.matching;
  }

  async function load() {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(view)) if (value !== "") query.set(key, value);
    const data = await Common.getJson(`${kind.route}?${query}`);
    if (data.offset >= data.matching && data.matching > 0 && view.offset > 0) {
      view.offset = Math.max(0, data.matching - view.limit);
      remember();
      return true;
    }
    render(data);
    Common.stamp(`refreshed ${new Date().toLocaleTimeString()} · every ${Common.refreshMs / 1000} s`);
    return true;
  }

  function start(name) {
    kind = KINDS[name];
    byId("about").textContent = kind.about;
    const head = kind.columns.map(([label]) => {
      const th = el("th", label);
      th.scope = "col";
      return th;
    });
    byId("rows").querySelector("thead tr").replaceChildren(...head);
    Common.bindPaging(view, setView);
    refresh = Common.poll(load);
  }

  return { start };
})();
