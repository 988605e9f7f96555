// The instance page's picture: checks as marks coloured by the job's answer, timers as spans from their
// creation to their firing, and the start, the deadline, the end (or now) as vertical lines. Plain SVG,
// drawn at the container's width and redrawn when it changes.
"use strict";

const Timeline = (() => {
  const { svg } = Common;
  const LANE_HEIGHT = 30;
  const TOP = 8;
  const AXIS = 26;
  const STEPS = [0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
    21600, 43200, 86400];

  function seconds(iso, start) {
    return iso ? (Date.parse(iso) - start) / 1000 : null;
  }

  function tickStep(span, room) {
    const wanted = Math.max(2, Math.floor(room / 70));
    return STEPS.find((step) => span / step <= wanted) || STEPS[STEPS.length - 1];
  }

  function tickLabel(value, step) {
    if (step >= 60 && value % 60 === 0) return `${value / 60} min`;
    const digits = step < 0.1 ? 2 : step < 1 ? 1 : 0;
    return `${value.toFixed(digits)} s`;
  }

  // What to draw, in seconds from the monitor's start.
  function layout(data) {
    const start = data.start;
    const checks = [];
    const waits = [];
    const guards = [];
    const events = [];
    for (const entry of data.entries) {
      const at = seconds(entry.at, start);
      if (entry.kind === "check" || entry.kind === "check-failed") {
        if (at !== null) checks.push({ entry, at });
      } else if (entry.kind === "timer") {
        const since = seconds(entry.since, start);
        const span = { entry, from: since === null ? at : since, to: at };
        if (span.to === null) continue;
        (entry.label === "deadline guard" ? guards : waits).push(span);
      } else if (entry.kind === "event" || entry.kind === "terminated") {
        if (at !== null) events.push({ entry, at });
      }
    }
    const deadline = data.deadline === null ? null : (data.deadline - start) / 1000;
    const end = data.end === null ? null : (data.end - start) / 1000;
    const now = (data.now - start) / 1000;
    const next = data.next === null ? null : (data.next - start) / 1000;
    // What has happened (and the next check): drawn to scale. The deadline joins it when it is near;
    // a far deadline (a long monitor's first seconds) is an arrow at the right edge instead.
    const seen = Math.max(
      0.001, end === null ? now : end, next === null || end !== null ? 0 : next,
      ...checks.map((c) => c.at), ...waits.filter((w) => w.entry.status === "fired").map((w) => w.to),
      ...events.map((e) => e.at),
    );
    const span = deadline !== null && deadline <= seen * 2.5 ? Math.max(seen, deadline) * 1.03 : seen * 1.25;
    const lanes = [["checks", true], ["waits", waits.length > 0], ["guard", guards.length > 0],
      ["events", events.length > 0]].filter(([, shown]) => shown).map(([name]) => name);
    return { checks, waits, guards, events, deadline, end, now, span, lanes };
  }

  function title(node, text) {
    node.append(svg("title", {}, text));
    return node;
  }

  function draw(container, data) {
    const width = Math.max(280, Math.floor(container.clientWidth || 600));
    const plan = layout(data);
    const labelWidth = width < 520 ? 56 : 76;
    const right = 14;
    const room = width - labelWidth - right;
    const height = TOP + plan.lanes.length * LANE_HEIGHT + AXIS;
    const x = (value) => labelWidth + (Math.min(Math.max(value, 0), plan.span) / plan.span) * room;
    const laneY = (name) => TOP + plan.lanes.indexOf(name) * LANE_HEIGHT + LANE_HEIGHT / 2;
    const failures = plan.checks.filter((c) => c.entry.kind === "check-failed").length;
    const summary = `${plan.checks.length - failures} check(s)` +
      (failures ? `, ${failures} failed attempt(s)` : "") + `, ${plan.waits.length + plan.guards.length} timer(s)`;

    const root = svg("svg", {
      width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": "chart-title",
      class: "timeline-chart",
    });
    root.append(svg("title", { id: "chart-title" }, `Timeline: ${summary}`));

    // Lanes and their names.
    plan.lanes.forEach((name, index) => {
      const y = TOP + index * LANE_HEIGHT;
      root.append(svg("rect", { x: labelWidth, y, width: room, height: LANE_HEIGHT, class: `lane lane-${index % 2}` }));
      root.append(svg("text", { x: labelWidth - 6, y: y + LANE_HEIGHT / 2 + 4, class: "lane-name" }, name));
    });

    // Axis.
    const axisY = TOP + plan.lanes.length * LANE_HEIGHT;
    const step = tickStep(plan.span, room);
    const axis = svg("g", { class: "axis" });
    for (let value = 0; value <= plan.span + 1e-9; value += step) {
      const px = x(value);
      axis.append(svg("line", { x1: px, x2: px, y1: axisY, y2: axisY + 4 }));
      axis.append(svg("text", { x: px, y: axisY + 16 }, tickLabel(value, step)));
    }
    axis.append(svg("line", { x1: labelWidth, x2: labelWidth + room, y1: axisY, y2: axisY }));
    root.append(axis);

    // Timers: a span from creation to firing; a pending one ends at "now" (or the end), dashed.
    const spans = svg("g", { class: "timers" });
    const drawSpan = (span, lane) => {
      const entry = span.entry;
      const pending = entry.status !== "fired";
      const shown = pending && plan.end !== null ? "never fired (the run ended first)" : entry.status;
      const stop = pending ? Math.min(span.to, plan.end === null ? plan.now : plan.end) : span.to;
      const from = Math.min(span.from, stop);
      const x1 = x(from);
      const x2 = Math.max(x(stop), x1 + 2);
      const y = laneY(lane) - 5;
      const mark = svg("rect", {
        x: x1, y, width: x2 - x1, height: 10, rx: 3,
        class: `timer-span ${pending ? "pending" : "fired"}`, "data-kind": "timer", "data-status": entry.status,
      });
      const due = `due +${span.to.toFixed(2)} s`;
      title(mark, `${entry.label}: created +${from.toFixed(2)} s, ${due}, ${shown}`);
      spans.append(mark);
      if (pending && span.to > plan.span) {
        spans.append(svg("text", { x: labelWidth + room - 4, y: y + 9, class: "beyond" }, `${due} →`));
      }
    };
    plan.waits.forEach((span) => drawSpan(span, "waits"));
    plan.guards.forEach((span) => drawSpan(span, "guard"));
    root.append(spans);

    // Start, deadline, end or now.
    const markers = svg("g", { class: "markers" });
    const vertical = (value, name, text) => {
      if (value === null || value > plan.span) return;
      const px = x(value);
      const line = svg("line", { x1: px, x2: px, y1: TOP - 4, y2: axisY, class: `marker ${name}`, "data-marker": name });
      title(line, `${text} +${value.toFixed(2)} s`);
      markers.append(line);
    };
    vertical(0, "start", "start");
    vertical(plan.deadline, "deadline", "deadline");
    if (plan.deadline !== null && plan.deadline > plan.span) {
      markers.append(svg("text", { x: labelWidth + room - 4, y: TOP + 11, class: "beyond deadline", "data-marker": "deadline-later" },
        `deadline +${plan.deadline.toFixed(0)} s →`));
    }
    if (plan.end !== null) vertical(plan.end, "end", "end");
    else vertical(plan.now, "now", "now");
    root.append(markers);

    // Events (cancel, terminate, ...): diamonds.
    const eventMarks = svg("g", { class: "events" });
    for (const { entry, at } of plan.events) {
      const px = x(at);
      const y = laneY("events");
      const mark = svg("path", {
        d: `M${px} ${y - 7} L${px + 7} ${y} L${px} ${y + 7} L${px - 7} ${y} Z`,
        class: `event-mark ${entry.kind}`, "data-kind": entry.kind,
      });
      eventMarks.append(title(mark, `${entry.label} at +${at.toFixed(2)} s${entry.detail ? ": " + entry.detail : ""}`));
    }
    root.append(eventMarks);

    // Checks last, on top: one dot per check, coloured by what the job answered; a failed attempt (retried
    // under the same check number) is an orange cross.
    const checkMarks = svg("g", { class: "checks" });
    for (const { entry, at } of plan.checks) {
      const failed = entry.kind === "check-failed";
      const status = failed ? "Error" : entry.status || "Unknown";
      const [cx, cy] = [x(at), laneY("checks")];
      const mark = failed
        ? svg("path", { d: `M${cx - 5} ${cy - 5} L${cx + 5} ${cy + 5} M${cx + 5} ${cy - 5} L${cx - 5} ${cy + 5}`,
          class: "attempt-mark", "data-kind": "check-failed", "data-status": status })
        : svg("circle", { cx, cy, r: 6, class: `check-mark job-${status}`, "data-kind": "check", "data-status": status });
      const what = failed ? `${entry.label}: attempt failed` : `${entry.label}: ${status}`;
      checkMarks.append(title(mark, `${what} at +${at.toFixed(2)} s${entry.detail ? " (" + entry.detail + ")" : ""}`));
    }
    root.append(checkMarks);

    container.replaceChildren(root);
    return summary;
  }

  function legend(container) {
    const items = [
      ["check-mark job-Running", "circle", "check: Running"],
      ["check-mark job-Completed", "circle", "check: Completed"],
      ["check-mark job-Failed", "circle", "check: Failed"],
      ["attempt-mark", "cross", "failed attempt (retried)"],
      ["timer-span fired", "rect", "timer (fired)"],
      ["timer-span pending", "rect", "timer (pending)"],
      ["marker deadline", "line", "deadline"],
      ["marker end", "line", "end"],
      ["marker now", "line", "now"],
    ];
    const list = Common.el("ul", null, "legend");
    for (const [className, shape, text] of items) {
      const icon = svg("svg", { width: 18, height: 14, "aria-hidden": "true" });
      if (shape === "circle") icon.append(svg("circle", { cx: 9, cy: 7, r: 5, class: className }));
      if (shape === "rect") icon.append(svg("rect", { x: 1, y: 3, width: 16, height: 8, rx: 2, class: className }));
      if (shape === "cross") icon.append(svg("path", { d: "M4 2 L14 12 M14 2 L4 12", class: className }));
      if (shape === "line") icon.append(svg("line", { x1: 9, x2: 9, y1: 0, y2: 14, class: className }));
      const item = Common.el("li");
      item.append(icon, document.createTextNode(text));
      list.append(item);
    }
    container.replaceChildren(list);
  }

  return { draw, legend, layout };
})();
