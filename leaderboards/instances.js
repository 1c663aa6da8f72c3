// The instance browser's page script (render_instances.py): every text from a submission goes in
// through textContent, never parsed as HTML.
const data = JSON.parse(document.getElementById("instances").textContent);
const root = document.getElementById("items");
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
function highlighted(text, spans) {
  const box = el("div", "text");
  const marks = Object.values(spans || {}).filter(s => s[0] < text.length).sort((a, b) => a[0] - b[0]);
  let at = 0;
  for (const [start, end] of marks) {
    if (start < at) continue;
    box.append(document.createTextNode(text.slice(at, start)));
    box.append(el("mark", "", text.slice(start, Math.min(end, text.length))));
    at = Math.min(end, text.length);
  }
  box.append(document.createTextNode(text.slice(at)));
  return box;
}
function verdictOf(answer) {
  if (answer.preference === null || answer.preference === undefined) return "none";
  return answer.preference > 1.5 ? "model" : answer.preference < 1.5 ? "reference" : "draw";
}
function render() {
  const detector = document.getElementById("detector").value;
  const verdict = document.getElementById("verdict").value;
  const flippedOnly = document.getElementById("flipped").checked;
  const chosen = data.entries.filter(e => document.getElementById("entry-" + e.name).checked);
  root.replaceChildren();
  let shown = 0;
  data.items.forEach((item, index) => {
    const answers = chosen.map(e => [e, item.answers[e.name]]).filter(([, a]) => a);
    const keep = answers.filter(([, a]) =>
      (!detector || a.flags.includes(detector)) && (!verdict || verdictOf(a) === verdict) && (!flippedOnly || a.flipped === true));
    if (!keep.length) return;
    shown += 1;
    const box = el("div", "item");
    box.id = "item-" + index;
    box.dataset.index = index;
    box.append(el("div", "instruction", (index + 1) + ". " + item.instruction));
    const grid = el("div", "answers");
    if (item.reference !== null) {
      const ref = el("div", "answer reference");
      ref.append(el("h3", "", "reference" + (data.reference ? ": " + data.reference : "")), highlighted(item.reference, {}));
      grid.append(ref);
    }
    for (const [entry, answer] of keep) {
      const card = el("div", "answer");
      card.dataset.entry = entry.name;
      card.append(el("h3", "", entry.name));
      card.append(highlighted(answer.text, answer.spans));
      const meta = el("div", "meta");
      for (const flag of answer.flags) meta.append(el("span", "flag", flag));
      const v = verdictOf(answer);
      if (v !== "none") {
        const label = v === "model" ? "judge prefers this answer" : v === "reference" ? "judge prefers the reference" : "draw";
        meta.append(el("span", v === "model" ? "win" : v === "reference" ? "loss" : "", label + " (" + answer.preference.toFixed(3) + ", " + answer.order + (answer.flipped ? ", flipped between orders" : "") + ")"));
      }
      if (answer.ranking !== null && answer.ranking !== undefined) meta.append(el("div", "", "ranking: the true response beats " + Math.round(answer.ranking * 100) + "% of distractors"));
      if (answer.cut) meta.append(el("div", "", "cut here; the full answer is in " + answer.record));
      if (answer.against) {
        const other = el("details", "");
        other.append(el("summary", "", "judged against another reference answer (its own seed's)"), el("div", "text", answer.against));
        meta.append(other);
      }
      card.append(meta);
      grid.append(card);
    }
    box.append(grid);
    root.append(box);
  });
  document.getElementById("count").textContent = shown + " of " + data.items.length + " instructions";
}
const picks = document.getElementById("entries");
data.entries.forEach((e, i) => {
  const label = el("label", "");
  const box = el("input");
  box.type = "checkbox"; box.id = "entry-" + e.name; box.checked = i < 4 || location.hash === "#" + e.name;
  box.addEventListener("change", render);
  label.append(box, document.createTextNode(" " + e.name + " "));
  picks.append(label);
});
const detectors = document.getElementById("detector");
for (const name of data.detectors) { const o = el("option", "", name); o.value = name; detectors.append(o); }
for (const id of ["detector", "verdict", "flipped"]) document.getElementById(id).addEventListener("change", render);
render();
