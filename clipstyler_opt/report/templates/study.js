(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("study-data").textContent);
  var trials = data.trials;
  var answers = [];
  var index = -1;
  var shownAt = 0;
  var participant = "";
  var csvUrl = null;

  function byId(id) { return document.getElementById(id); }

  function show(section) {
    ["intro", "trial", "done"].forEach(function (name) { byId(name).hidden = name !== section; });
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
    shownAt = performance.now();
  }

  function start() {
    participant = byId("participant").value.trim() || randomId();
    window.addEventListener("beforeunload", warnBeforeLeaving);
    index = 0;
    show("trial");
    showTrial();
  }

  function warnBeforeLeaving(event) {
    if (index >= 0 && index < trials.length) { event.preventDefault(); event.returnValue = ""; }
  }

  function choose(side) {
    if (index < 0 || index >= trials.length) { return; }
    var trial = trials[index];
    var chosen = trial[side];
    answers.push({
      study_id: data.study_id, seed: data.seed, participant: participant, trial: index + 1,
      pair: trial.pair, question: trial.question, left_cell: trial.left.cell, right_cell: trial.right.cell,
      chosen_cell: chosen.cell, chosen_side: side, is_repeat: trial.is_repeat ? 1 : 0,
      is_attention_check: trial.is_attention_check ? 1 : 0, expected_cell: trial.expected_cell,
      response_ms: Math.round(performance.now() - shownAt)
    });
    index += 1;
    if (index < trials.length) { showTrial(); } else { finish(); }
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

  byId("start").addEventListener("click", start);
  byId("left").addEventListener("click", function (event) { event.currentTarget.blur(); choose("left"); });
  byId("right").addEventListener("click", function (event) { event.currentTarget.blur(); choose("right"); });

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.repeat) { return; }
    var key = event.key;
    if (!byId("intro").hidden) {
      if (key === "Enter" || (key === " " && event.target.tagName !== "INPUT")) { event.preventDefault(); start(); }
    } else if (!byId("trial").hidden) {
      if (key === "ArrowLeft" || key === "a" || key === "A") { event.preventDefault(); choose("left"); }
      else if (key === "ArrowRight" || key === "l" || key === "L") { event.preventDefault(); choose("right"); }
      else if (key === "Enter" || key === " ") { event.preventDefault(); }
    } else if (!byId("done").hidden && (key === "Enter" || key === " ")) {
      event.preventDefault();
      download();
    }
  });
  byId("participant").focus();
}());
