/*
 * @tre/jupyterlab: the TRE in JupyterLab (a prebuilt federated extension, written by hand).
 *
 * JupyterLab loads this script, calls `init(shareScope)` and then `get("./extension")`, as it
 * does for any prebuilt extension (jupyterlab/staging/bootstrap.js). The JupyterLab packages it
 * uses are taken from the share scope (the page's own copies: one Widget class, one token per
 * service), so it needs no bundler.
 *
 * - Parquet files open as a read-only table preview: their first rows and the columns' types,
 *   from the server extension tre.hub_config.lab (GET <base>/tre/parquet?path=...&rows=...),
 *   without loading the file into the page.
 * - Where JupyterLab's Download and Terminal were (the File menu, a file's context menu, the
 *   launcher), a note says they are closed in the TRE and what to do instead.
 */
var _JUPYTERLAB;
(function () {
  "use strict";
  var NAME = "@tre/jupyterlab";
  var ROWS = 200;
  var shareScope = null;
  var lib = {};

  function newest(versions) {
    var keys = Object.keys(versions);
    var loaded = keys.filter(function (k) { return versions[k].loaded; });
    var pick = (loaded.length ? loaded : keys).sort(function (a, b) {
      var x = a.split(/[.-]/).map(Number), y = b.split(/[.-]/).map(Number);
      for (var i = 0; i < Math.max(x.length, y.length); i++) {
        if ((x[i] || 0) !== (y[i] || 0)) { return (x[i] || 0) - (y[i] || 0); }
      }
      return 0;
    });
    return versions[pick[pick.length - 1]];
  }

  function shared(name) {
    var versions = shareScope && shareScope[name];
    if (!versions) { return Promise.reject(new Error(NAME + ": " + name + " is not in the share scope")); }
    return Promise.resolve(newest(versions).get()).then(function (factory) { return factory(); });
  }

  function load() {
    var names = {
      widgets: "@lumino/widgets",
      docregistry: "@jupyterlab/docregistry",
      services: "@jupyterlab/services",
      coreutils: "@jupyterlab/coreutils",
      apputils: "@jupyterlab/apputils",
      mainmenu: "@jupyterlab/mainmenu",
      launcher: "@jupyterlab/launcher",
      ui: "@jupyterlab/ui-components"
    };
    return Promise.all(Object.keys(names).map(function (key) {
      return shared(names[key]).then(function (module) { lib[key] = module; });
    }));
  }

  // --- the Parquet preview -------------------------------------------------------------------

  var STYLE =
    ".tre-parquet { overflow: auto; padding: 8px 12px; font-size: var(--jp-ui-font-size1); color: var(--jp-ui-font-color1); background: var(--jp-layout-color1); }" +
    ".tre-parquet p.tre-about { margin: 0 0 8px; color: var(--jp-ui-font-color2); }" +
    ".tre-parquet table { border-collapse: collapse; font-family: var(--jp-code-font-family); font-size: var(--jp-code-font-size); }" +
    ".tre-parquet th, .tre-parquet td { border: 1px solid var(--jp-border-color2); padding: 2px 8px; text-align: left; white-space: nowrap; }" +
    ".tre-parquet th { position: sticky; top: 0; background: var(--jp-layout-color2); }" +
    ".tre-parquet th small { display: block; font-weight: normal; color: var(--jp-ui-font-color2); }" +
    ".tre-parquet td.tre-null { color: var(--jp-ui-font-color3); }" +
    ".tre-parquet td.tre-number { text-align: right; }" +
    ".tre-parquet p.tre-error { color: var(--jp-error-color1); }";

  function addStyle() {
    if (document.getElementById("tre-jupyterlab-style")) { return; }
    var style = document.createElement("style");
    style.id = "tre-jupyterlab-style";
    style.textContent = STYLE;
    document.head.appendChild(style);
  }

  function element(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (className) { node.className = className; }
    return node;
  }

  function thousands(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, "\u00a0");
  }

  function renderPreview(node, data) {
    node.textContent = "";
    var shown = data.rows.length;
    node.appendChild(element("p",
      "Preview, read-only: the first " + thousands(shown) + " of " + thousands(data.total_rows) + " rows, " +
      data.columns.length + (data.total_columns > data.columns.length ? " of " + data.total_columns : "") +
      " columns. To analyse it: pd.read_parquet(\"" + data.path.split("/").pop() + "\") or tre.connect().",
      "tre-about"));
    var table = element("table");
    var head = element("tr");
    data.columns.forEach(function (column) {
      var th = element("th", column.name);
      th.appendChild(element("small", column.type));
      head.appendChild(th);
    });
    var thead = element("thead");
    thead.appendChild(head);
    table.appendChild(thead);
    var body = element("tbody");
    data.rows.forEach(function (row) {
      var tr = element("tr");
      row.forEach(function (value) {
        var empty = value === null || value === undefined;
        var number = typeof value === "number";
        tr.appendChild(element("td", empty ? "" : value, empty ? "tre-null" : number ? "tre-number" : ""));
      });
      body.appendChild(tr);
    });
    table.appendChild(body);
    node.appendChild(table);
  }

  function previewWidget(context, settings) {
    var widget = new lib.widgets.Widget();
    widget.addClass("tre-parquet");
    widget.node.appendChild(element("p", "Reading " + context.localPath + " …", "tre-about"));
    context.ready.then(function () {
      var url = lib.coreutils.URLExt.join(settings.baseUrl, "tre/parquet") +
        "?path=" + encodeURIComponent(context.localPath) + "&rows=" + ROWS;
      return lib.services.ServerConnection.makeRequest(url, {}, settings).then(function (response) {
        return response.json().then(function (data) {
          if (!response.ok) { throw new Error(data.message || response.statusText); }
          renderPreview(widget.node, data);
        });
      });
    }).catch(function (error) {
      widget.node.textContent = "";
      widget.node.appendChild(element("p", "Cannot preview " + context.localPath + ": " + error.message, "tre-error"));
    });
    return widget;
  }

  var parquetPlugin = {
    id: NAME + ":parquet",
    description: "Opens Parquet files as a read-only table preview.",
    autoStart: true,
    activate: function (app) {
      addStyle();
      var registry = app.docRegistry;
      var settings = app.serviceManager.serverSettings;
      registry.addFileType({
        name: "parquet",
        displayName: "Parquet table",
        extensions: [".parquet"],
        mimeTypes: ["application/vnd.apache.parquet"],
        contentType: "file",
        fileFormat: null,
        icon: lib.ui.spreadsheetIcon
      });
      // A model that never holds the file: the context asks the server for its metadata only.
      registry.addModelFactory({
        name: "tre-parquet",
        contentType: "file",
        fileFormat: null,
        collaborative: false,
        isDisposed: false,
        dispose: function () { this.isDisposed = true; },
        preferredLanguage: function () { return ""; },
        createNew: function (options) {
          var model = new lib.docregistry.DocumentModel(options || {});
          model.readOnly = true; // nothing to save: Save is off, and the file is never written over
          return model;
        }
      });
      class ParquetFactory extends lib.docregistry.ABCWidgetFactory {
        createNewWidget(context) {
          // A preview holds no contents: saving it would have nothing to write (Ctrl+S does nothing).
          context.save = context.saveAs = function () { return Promise.resolve(); };
          var content = previewWidget(context, settings);
          var widget = new lib.docregistry.DocumentWidget({ content: content, context: context });
          widget.title.icon = lib.ui.spreadsheetIcon;
          return widget;
        }
      }
      registry.addWidgetFactory(new ParquetFactory({
        name: "Parquet preview",
        label: "Parquet preview",
        modelName: "tre-parquet",
        fileTypes: ["parquet"],
        defaultFor: ["parquet"],
        readOnly: true
      }));
    }
  };

  // --- notes where Download and Terminal were ------------------------------------------------

  var CLOSED = {
    "tre:download-closed": {
      label: "Download (closed in the TRE)",
      title: "Downloads are closed in the TRE",
      body: "Files cannot be downloaded from a project: what leaves goes through output checking and two " +
        "officers. Make tables, figures and models with tre.safe (they are checked and queued), then put them " +
        "into a request on the Output review page (the button on the hub's home page). Released outputs are " +
        "sent on by the TRE and appear in released/.",
      icon: "downloadIcon"
    },
    "tre:terminal-closed": {
      label: "Terminal (closed in the TRE)",
      title: "Terminals are closed in the TRE",
      body: "There is no terminal, no shell (! in a notebook) and no network in a project. Work in Python: " +
        "pathlib and os for files, pandas and DuckDB (con = tre.connect()) for data. Packages are installed " +
        "by the TRE's administrators.",
      icon: "terminalIcon"
    }
  };

  var closedPlugin = {
    id: NAME + ":closed",
    description: "Notes where JupyterLab's Download and Terminal were: the File menu, a file's menu, the launcher.",
    autoStart: true,
    activate: function (app, mainMenu, launcher) {
      Object.keys(CLOSED).forEach(function (id) {
        var note = CLOSED[id];
        app.commands.addCommand(id, {
          label: note.label,
          caption: note.title,
          icon: lib.ui[note.icon],
          execute: function () {
            return lib.apputils.showDialog({
              title: note.title,
              body: note.body,
              buttons: [lib.apputils.Dialog.okButton({ label: "OK" })]
            });
          }
        });
      });
      app.contextMenu.addItem({
        command: "tre:download-closed",
        selector: '.jp-DirListing-item[data-isdir="false"]',
        rank: 9
      });
      if (mainMenu) {
        mainMenu.fileMenu.addGroup([{ command: "tre:download-closed" }], 6);
        mainMenu.fileMenu.newMenu.addGroup([{ command: "tre:terminal-closed" }], 30);
      }
      if (launcher) {
        launcher.add({ command: "tre:terminal-closed", category: "Other", rank: 0 });
      }
    }
  };

  function plugins() {
    // Tokens come from the page's own packages, so they are the ones JupyterLab provides.
    closedPlugin.optional = [lib.mainmenu.IMainMenu, lib.launcher.ILauncher];
    return [parquetPlugin, closedPlugin];
  }

  _JUPYTERLAB = typeof _JUPYTERLAB === "undefined" ? {} : _JUPYTERLAB;
  _JUPYTERLAB[NAME] = {
    init: function (scope) {
      shareScope = scope;
      return Promise.resolve();
    },
    get: function (module) {
      if (module !== "./extension") {
        return Promise.reject(new Error(NAME + ': no module "' + module + '"'));
      }
      return load().then(function () {
        var list = plugins();
        return function () { return list; };
      });
    }
  };
  window._JUPYTERLAB = _JUPYTERLAB;
})();
