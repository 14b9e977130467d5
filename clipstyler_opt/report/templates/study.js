(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("study-data").textContent);
  var trials = data.trials;
  var storageKey = "clipopt-study:" + data.study_id;
  var answers = [];
  var index = -1;
  var shownAt = 0;
  var participant = "";
  var csvUrl = null;

  function byId(id) { return document.getElementById(id); }

  function show(section) {
    ["intro", "trial", "done"].forEach(function (name) { byId(name).hidden = name !== section; });
  }

  // Progress is kept in the browser (localStorage), so that a reload or a closed tab resumes.
  function storage() {
    try {
      var store = window.localStorage;
      store.setItem(storageKey + ":probe", "1");
      store.removeItem(storageKey + ":probe");
      return store;
    } catch (error) {
      return null;
    }
  }

  function save() {
    var store = storage();
    if (store) { store.setItem(storageKey, JSON.stringify({ participant: participant, answers: answers })); }
  }

  function forget() {
    var store = storage();
    if (store) { store.removeItem(storageKey); }
  }

  function saved() {
    var store = storage();
    if (!store) { return null; }
    try {
      var state = JSON.parse(store.getItem(storageKey) || "null");
      if (state && typeof state.participant === "string" && Array.isArray(state.answers) &&
          state.answers.length < trials.length) { return state; }
    } catch (error) { /* a damaged entry: start afresh */ }
    store.removeItem(storageKey);
    return null;
  }

  function randomId() {
    var words = new Uint32Array(2);
    window.crypto.getRandomValues(words);
    return "anon-" + words[0].toString(36) + words[1].toString(36);
  }

  function questionText(trial) {
    if (trial.question === "content") {
      return "Which image better keeps the content of the photo above?";
    }
    return "Which image better matches this style: \u201c" + trial.prompt + "\u201d?";
  }

  function showTrial() {
    var trial = trials[index];
    byId("question").textContent = questionText(trial);
    var reference = byId("reference");
    reference.hidden = !trial.content;
    if (trial.content) { byId("content-image").src = data.images[trial.content]; }
    byId("left-image").src = data.images[trial.left.image];
    byId("right-image").src = data.images[trial.right.image];
    byId("progress-text").textContent = "Question " + (index + 1) + " of " + trials.length;
    byId("progress-bar").style.width = (100 * index / trials.length) + "%";
    var progress = byId("progress");
    progress.setAttribute("aria-valuemax", String(trials.length));
    progress.setAttribute("aria-valuenow", String(index));
    byId("undo").disabled = answers.length === 0;
    shownAt = performance.now();
  }

  function begin() {
    window.addEventListener("beforeunload", warnBeforeLeaving);
    index = answers.length;
    show("trial");
    showTrial();
  }

  function start() {
    participant = byId("participant").value.trim() || randomId();
    answers = [];
    save();
    begin();
  }

  function warnBeforeLeaving(event) {
    if (index >= 0 && index < trials.length && !storage()) { event.preventDefault(); event.returnValue = ""; }
  }

  function choose(side) {
    if (index < 0 || index >= trials.length) { return; }
    var trial = trials[index];
    var chosen = side === "none" ? "" : trial[side].cell;
    answers.push({
      study_id: data.study_id, seed: data.seed, participant: participant, trial: index + 1,
      pair: trial.pair, question: trial.question, left_cell: trial.left.cell, right_cell: trial.right.cell,
      chosen_cell: chosen, chosen_side: side, is_repeat: trial.is_repeat ? 1 : 0,
      is_attention_check: trial.is_attention_check ? 1 : 0, expected_cell: trial.expected_cell,
      response_ms: Math.round(performance.now() - shownAt)
    });
    byId("resumed").hidden = true;
    index = answers.length;
    if (index < trials.length) { save(); showTrial(); } else { finish(); }
  }

  function startOver() {
    window.removeEventListener("beforeunload", warnBeforeLeaving);
    forget();
    answers = [];
    index = -1;
    byId("resumed").hidden = true;
    byId("participant").value = "";
    show("intro");
    byId("participant").focus();
  }

  function undo() {
    if (index < 0 || index >= trials.length || answers.length === 0) { return; }
    answers.pop();
    index = answers.length;
    save();
    showTrial();
  }

  function csvField(value) {
    // A text starting with = + - @ (or tab, CR) would run as a spreadsheet formula: prefix a single
    // quote, and to texts starting with one, so that the analysis can remove it exactly (study.py).
    var text = typeof value === "string" && /^[=+\-@\t\r']/.test(value) ? "'" + value : String(value);
    return /[",\r\n]/.test(text) || text.trim() !== text ? "\"" + text.replace(/"/g, "\"\"") + "\"" : text;
  }

  function toCsv() {
    var lines = [data.columns.join(",")];
    answers.forEach(function (row) {
      lines.push(data.columns.map(function (column) { return csvField(row[column]); }).join(","));
    });
    return lines.join("\r\n") + "\r\n";
  }

  function download() {
    var link = byId("download");
    link.click();
  }

  function finish() {
    window.removeEventListener("beforeunload", warnBeforeLeaving);
    forget();
    byId("progress-bar").style.width = "100%";
    var blob = new Blob([toCsv()], { type: "text/csv;charset=utf-8" });
    if (csvUrl) { URL.revokeObjectURL(csvUrl); }
    csvUrl = URL.createObjectURL(blob);
    var link = byId("download");
    var name = "answers-" + data.study_id + "-" + participant.replace(/[^A-Za-z0-9_-]+/g, "_") + ".csv";
    link.href = csvUrl;
    link.download = name;
    link.textContent = name;
    show("done");
    download();
  }

  function answerButton(side) {
    return function (event) {
      // A button keeps no focus after a click or tap, so nothing marks the side chosen last.
      event.currentTarget.blur();
      choose(side);
    };
  }

  byId("start").addEventListener("click", start);
  byId("left").addEventListener("click", answerButton("left"));
  byId("right").addEventListener("click", answerButton("right"));
  byId("cant-decide").addEventListener("click", answerButton("none"));
  byId("undo").addEventListener("click", function (event) { event.currentTarget.blur(); undo(); });
  byId("start-over").addEventListener("click", startOver);
  byId("cant-decide").hidden = !data.cant_decide;
  byId("cant-decide-help").hidden = !data.cant_decide;

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.repeat) { return; }
    var key = event.key;
    var onButton = event.target && event.target.tagName === "BUTTON";
    if (!byId("intro").hidden) {
      if (onButton) { return; }  // Enter or Space activates the focused button itself
      if (key === "Enter" || (key === " " && event.target.tagName !== "INPUT")) { event.preventDefault(); start(); }
    } else if (!byId("trial").hidden) {
      if (key === "ArrowLeft" || key === "a" || key === "A") { event.preventDefault(); choose("left"); }
      else if (key === "ArrowRight" || key === "l" || key === "L") { event.preventDefault(); choose("right"); }
      else if (data.cant_decide && (key === "ArrowDown" || key === "n" || key === "N")) {
        event.preventDefault();
        choose("none");
      }
      else if (key === "Backspace" || key === "u" || key === "U") { event.preventDefault(); undo(); }
      else if ((key === "Enter" || key === " ") && !onButton) { event.preventDefault(); }
    } else if (!byId("done").hidden && (key === "Enter" || key === " ") && !onButton) {
      // Enter on the focused link follows the link itself: one download, not two
      if (key === "Enter" && event.target.tagName === "A") { return; }
      event.preventDefault();
      download();
    }
  });

  if (!storage()) { byId("storage-note").hidden = false; }
  var state = saved();
  if (state) {
    participant = state.participant;
    answers = state.answers;
    byId("resumed").hidden = false;
    begin();
  } else {
    byId("participant").focus();
  }
}());
