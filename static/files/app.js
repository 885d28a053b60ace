// wesgate's small script: it only adds to pages that work without it.
// - Run pages follow stdout and stderr while the run is active (HTTP Range
//   requests from the last offset) and reload when the run has ended.
// - The submit form checks that the parameters are a JSON object.
"use strict";

(function () {
  // Terminal escape sequences (cwltool colours its log even into a file);
  // the page leaves them out, as the server does for the first part.
  var ESCAPES = /\x1b(?:\[[0-?]*[ -\/]*[@-~]|[@-Z\\\]^_])/g;
  var ESCAPE_START = /^\x1b(?:\[[0-?]*[ -\/]*[@-~]|[@-Z\\\]^_])/;

  // plainText returns the text of a log read for the page. An escape
  // sequence cut by the end of the read waits in pre.carry for the next one.
  function plainText(pre, text) {
    text = (pre.carry || "") + text;
    pre.carry = "";
    var cut = text.lastIndexOf("\x1b");
    if (cut >= 0 && text.length - cut < 32 && !ESCAPE_START.test(text.slice(cut))) {
      pre.carry = text.slice(cut);
      text = text.slice(0, cut);
    }
    return text.replace(ESCAPES, "");
  }

  function followRun(run) {
    var api = run.dataset.api;
    var logs = Array.prototype.slice.call(document.querySelectorAll("pre.logtext"));
    var busy = false;
    function poll() {
      if (busy) return;
      busy = true;
      var pending = logs.map(function (pre) {
        var offset = parseInt(pre.dataset.offset || "0", 10);
        return fetch(pre.dataset.url, { headers: { Range: "bytes=" + offset + "-" }, credentials: "same-origin" })
          .then(function (resp) {
            if (resp.status === 206) {
              return resp.arrayBuffer().then(function (buf) {
                // Offsets count bytes; a character split across two reads
                // is joined by the streaming decoder.
                pre.decoder = pre.decoder || new TextDecoder("utf-8");
                var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
                pre.textContent += plainText(pre, pre.decoder.decode(buf, { stream: true }));
                pre.dataset.offset = String(offset + buf.byteLength);
                if (atBottom) pre.scrollTop = pre.scrollHeight;
              });
            }
          })
          .catch(function () {});
      });
      var status = fetch(api + "/status", { credentials: "same-origin" })
        .then(function (resp) { return resp.ok ? resp.json() : null; })
        .then(function (st) {
          if (!st) return;
          var badge = document.querySelector("#run-state .badge");
          if (badge && badge.textContent !== st.state) {
            badge.textContent = st.state;
            badge.className = "badge s-" + st.state;
          }
          var done = ["COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"];
          if (done.indexOf(st.state) >= 0) {
            // One last read of the logs, then the page with outputs and tasks.
            setTimeout(function () { window.location.reload(); }, 500);
            run.dataset.active = "false";
          }
        })
        .catch(function () {});
      Promise.all(pending.concat([status])).then(function () { busy = false; });
    }
    var timer = setInterval(function () {
      if (run.dataset.active !== "true") { clearInterval(timer); return; }
      poll();
    }, 2000);
  }

  function checkParams(form) {
    var area = form.querySelector("#f-params");
    var msg = form.querySelector("#err-params-js");
    if (!area || !msg) return;
    function check() {
      var text = area.value.trim();
      var problem = "";
      if (text !== "") {
        try {
          var v = JSON.parse(text);
          if (v === null || typeof v !== "object" || Array.isArray(v)) problem = "The parameters must be a JSON object, like {\"x\": 1}.";
        } catch (e) {
          problem = "The parameters are not valid JSON: " + e.message;
        }
      }
      msg.textContent = problem;
      msg.hidden = problem === "";
      area.setAttribute("aria-invalid", problem === "" ? "false" : "true");
      return problem === "";
    }
    area.addEventListener("input", check);
    form.addEventListener("submit", function (ev) {
      if (!check()) { ev.preventDefault(); area.focus(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var run = document.getElementById("run");
    if (run && run.dataset.active === "true") followRun(run);
    var form = document.querySelector("form.submit");
    if (form) checkParams(form);
  });
})();
