// Preloaded into Azurite by the demo (node --require): queue garbage collection runs once at
// start and then every AZURITE_GC_INTERVAL_MS instead of every 60 s. Azurite 3.37 deletes each
// unreferenced extent with an unindexed lookup (LokiExtentMetadataStore.deleteExtent ->
// findAndRemove), so after a few thousand messages one collection holds the CPU for a minute
// or more and every request stalls. A demo run is short: its garbage can wait. Tests never
// load this file.
"use strict";
const interval = Number(process.env.AZURITE_GC_INTERVAL_MS || "0");
if (interval > 0) {
  const constants = require(require.resolve("azurite/dist/src/queue/utils/constants", {
    paths: [process.cwd(), __dirname + "/.."],
  }));
  constants.DEFAULT_GC_INTERVAL_MS = interval;
}
