#!/usr/bin/env bash
# Installs code-server 4.100.3 (the last release that runs on Node.js 20) for
# test_vscode_code_server.py, without downloads from outside the npm registry.
#
#   tests/editors/install_code_server.sh [DEST]
#
# DEST defaults to editors/vscode/.test-cache/code-server (git-ignored), where
# the test looks for it. Needs node, npm, g++, make, and the Debian packages
# ripgrep and libkrb5-dev; the test also needs chromium. About a minute and
# 300 MB.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest=${1:-$root/editors/vscode/.test-cache/code-server}
export npm_config_nodedir=/usr    # node-gyp: the system's Node.js headers, no download
export npm_config_yes=true        # node-pty's install runs `npx node-gyp`
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
mkdir -p "$dest" && cd "$dest"
[ -f package.json ] || echo '{"name":"flowmetal-code-server","private":true}' > package.json
npm install --ignore-scripts code-server@4.100.3
npm rebuild argon2 --build-from-source          # instead of a prebuilt binary from GitHub
cd node_modules/code-server/lib/vscode
npm install --omit=dev --ignore-scripts
mkdir -p node_modules/@vscode/ripgrep/bin        # instead of ripgrep's download: Debian's rg
ln -sf /usr/bin/rg node_modules/@vscode/ripgrep/bin/rg
npm rebuild                                      # the native modules: spdlog, node-pty, kerberos, ...
ln -sfn node_modules node_modules.asar           # as code-server's postinstall.sh does
(cd bin/remote-cli && ln -sf code-linux.sh code-server)
(cd bin/helpers && ln -sf browser-linux.sh browser.sh)
cd extensions && npm install --omit=dev
echo "code-server installed: $dest/node_modules/.bin/code-server"
