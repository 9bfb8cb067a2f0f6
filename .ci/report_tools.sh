#!/usr/bin/env bash
# Debian tools the report tests use for real (as root):
#   .ci/report_tools.sh install   apt-get install texlive-latex-base texlive-latex-recommended (pdflatex +
#                                 booktabs: compiles table.tex), poppler-utils (pdffonts: the fonts a
#                                 figure embeds) and chromium (renders index.html headless), only if missing
#   .ci/report_tools.sh check     exit status 0 when all are present
# A failed install fails CI: the tests marked `tools` are never skipped silently.
set -euo pipefail

present() {
  command -v pdflatex >/dev/null && kpsewhich booktabs.sty >/dev/null 2>&1 && command -v pdffonts >/dev/null && command -v chromium >/dev/null
}

case "${1:-}" in
  install)
    present && exit 0
    [ "$(id -u)" = 0 ] || { echo "report_tools: installing LaTeX and chromium needs root (apt-get)" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || { echo "report_tools: apt-get update failed" >&2; exit 1; }
    apt-get install -y -qq --no-install-recommends texlive-latex-base texlive-latex-recommended poppler-utils chromium >/dev/null \
      || { echo "report_tools: apt-get install texlive-latex-base texlive-latex-recommended poppler-utils chromium failed" >&2; exit 1; }
    present || { echo "report_tools: installed, but pdflatex, booktabs.sty, pdffonts or chromium is still missing" >&2; exit 1; }
    ;;
  check) present ;;
  *) echo "usage: $0 install|check" >&2; exit 2 ;;
esac
