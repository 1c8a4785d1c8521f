#!/usr/bin/env bash
# Rebuilds age.js (and age.js.gz) from the npm age-encryption package pinned
# in package.json / package-lock.json. The output is committed and compiled
# into the controller (include_bytes!): nothing is fetched at run time.
#
# Usage: bash controller/assets/js/build.sh
# Needs Node.js and npm; the registry only for `npm ci`.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
# One ES module, minified. The overrides in package.json make
# @noble/post-quantum share @noble/curves and @noble/hashes with the rest
# (otherwise two copies of each are bundled: +30 KB).
npx esbuild entry.mjs --bundle --format=esm --minify --target=es2022 \
  --legal-comments=none --outfile=age.js
# The licence notices travel beside the bundle, not in it.
{
  echo "age.js bundles these npm packages (versions from package-lock.json):"
  node -e '
    const l = require("./package-lock.json").packages;
    for (const [p, v] of Object.entries(l))
      if (p.startsWith("node_modules/") && !p.includes("esbuild"))
        console.log(" ", p.slice(13) + "@" + v.version, v.license || "");'
} > age.js.LICENSES.txt
# Served with Content-Encoding: gzip to browsers that accept it (all do):
# 110 KB become 40 KB on a slow government link. -n: no name or time in the
# header, so the same input gives the same bytes.
gzip -9 -n -c age.js > age.js.gz
sha256sum age.js age.js.gz
