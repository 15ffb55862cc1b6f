#!/usr/bin/env bash
# Self-host the JavaScript the book needs, so it renders with no network:
# MathJax 3 (equations), require.js and the ipywidgets embed manager (widgets).
# Pinned npm packages, checked by sha256, unpacked into _vendor/ (git-ignored),
# which _config.yml serves as static files. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=_vendor
stamp="$dest/.vendored-v1"
[ -f "$stamp" ] && exit 0
command -v npm >/dev/null || { echo "vendor_js.sh: npm is needed (apt-get install npm, or install Node.js)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && npm pack --silent mathjax@3.2.2 @jupyter-widgets/html-manager@1.0.15 requirejs@2.3.7 >/dev/null )
( cd "$tmp" && sha256sum -c - <<'SUMS'
1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09  mathjax-3.2.2.tgz
2b9d65cb7913e1c7d671757a10008b32c9c2448d4429513371e55c07d6107638  jupyter-widgets-html-manager-1.0.15.tgz
31f3330c978fb28684622fe71165dc946432cf0210b2ea8a1ca0233e70f2737d  requirejs-2.3.7.tgz
SUMS
)
rm -rf "$dest"; mkdir -p "$dest/mathjax" "$dest/widgets/html-manager"
mkdir "$tmp/mj" "$tmp/hm" "$tmp/rq"
tar -xzf "$tmp/mathjax-3.2.2.tgz" -C "$tmp/mj"
tar -xzf "$tmp/jupyter-widgets-html-manager-1.0.15.tgz" -C "$tmp/hm"
tar -xzf "$tmp/requirejs-2.3.7.tgz" -C "$tmp/rq"
# MathJax: the combined component plus what it loads at render time (fonts, extensions, menu);
# the speech-rule engine (sre/, 3.9 MB) is left out.
cp "$tmp/mj/package/es5/tex-mml-chtml.js" "$dest/mathjax/"
for sub in input output ui a11y adaptors; do cp -r "$tmp/mj/package/es5/$sub" "$dest/mathjax/"; done
cp "$tmp/mj/package/LICENSE" "$dest/mathjax/"
cp "$tmp/hm/package/dist/"*.js "$tmp/hm/package/dist/"*.woff* "$dest/widgets/html-manager/" 2>/dev/null || cp "$tmp/hm/package/dist/"*.js "$dest/widgets/html-manager/"
cp "$tmp/rq/package/require.js" "$dest/widgets/require.js"
touch "$stamp"
echo "vendored JavaScript into $dest/ ($(du -sh "$dest" | cut -f1))"
