#!/bin/sh
# The image's virtualenv, cut down to what the service runs. Two steps:
#   slim-venv.sh cut VENV                 file cuts (below); leaves no bytecode at all
#   slim-venv.sh bytecode VENV WORKDIR    bytecode for the modules the service imports
# The Dockerfile runs `cut` in its builder stage (cached with the dependencies) and `bytecode`
# in its bytecode stage (it needs the service's files: WORKDIR is a copy of the image's /app).
# tests/runtime/image.py runs both on the runtime it builds, so the runtime tests exercise the
# same virtualenv. Each cut and its cost:
#   tests shipped inside packages (sqlalchemy.testing, alembic.testing, greenlet/tests, ...):
#     test-suite support that nothing imports outside a test run.
#   SQLAlchemy's MySQL, SQL Server and Oracle dialects: the service accepts only postgresql://
#     and sqlite:// URLs (app/config.py), so nothing can ever load them (alembic names them
#     for type checking only). A third database would need them back.
#   Cython/C sources and headers (*.pyx *.pxd *.pxi *.c *.h *.cpp *.hpp) and stubs (*.pyi):
#     inputs for compilers and type checkers. Every .py stays: tracebacks show source lines.
#   strip --strip-unneeded on the packages' extension modules: debug info and symbol tables
#     (uvloop, asyncpg, sqlalchemy's Cython modules, ...); a native crash in one of them would
#     show addresses instead of function names. What auditwheel patched is left alone: the
#     libraries it vendored into *.libs directories (already stripped) and modules it gave an
#     RPATH to them (psycopg2's), because strip is known to mangle patchelf's ELF edits.
#   bytecode: pip's .pyc for every module goes. The image runs with PYTHONDONTWRITEBYTECODE=1,
#     so a module without a .pyc is compiled in memory by every worker at every start: the
#     `bytecode` step runs warm_bytecode.py, which imports what the service imports (startup,
#     both database drivers, a request of each kind), and only those modules get a .pyc.
#     A module off those paths still works; it is compiled when first imported.
set -eu
usage() { echo "usage: slim-venv.sh cut VENV | slim-venv.sh bytecode VENV WORKDIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
step=$1 venv=$2
site=$(echo "$venv"/lib/python3.*/site-packages)
[ -d "$site" ] || { echo "slim-venv.sh: no site-packages under $venv" >&2; exit 1; }

case $step in
cut)
    command -v strip >/dev/null && command -v readelf >/dev/null \
        || { echo "slim-venv.sh: needs strip and readelf (binutils)" >&2; exit 1; }
    before=$(du -sk "$venv" | cut -f1)
    for unused in sqlalchemy/testing alembic/testing mako/testing greenlet/tests \
        aiosqlite/tests sqlalchemy/dialects/mssql sqlalchemy/dialects/mysql \
        sqlalchemy/dialects/oracle
    do
        rm -rf "${site:?}/$unused"
    done
    find "$site" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.c' \
        -o -name '*.h' -o -name '*.cpp' -o -name '*.hpp' -o -name '*.pyi' \) -delete
    find "$site" -path '*.libs' -prune -o -type f -name '*.so' -print | while read -r module
    do
        readelf -d "$module" | grep -Eq '\((RPATH|RUNPATH)\)' || strip --strip-unneeded "$module"
    done
    find "$venv" -depth -type d -name __pycache__ -exec rm -rf {} +
    echo "slim-venv.sh cut: $venv ${before}K -> $(du -sk "$venv" | cut -f1)K"
    ;;
bytecode)
    [ $# -eq 3 ] || usage
    here=$(cd "$(dirname "$0")" && pwd)
    # The service runs from a throwaway copy of its files, with nothing of the caller's
    # environment; a fixed hash seed makes the .pyc files (set constants) the same every build.
    scratch=$(mktemp -d)
    cp -R "$3"/. "$scratch"/
    (cd "$scratch" && env -i PATH="$venv/bin:/usr/local/bin:/usr/bin:/bin" LANG=C.UTF-8 \
        HOME="$scratch" TMPDIR="$scratch" PYTHONHASHSEED=0 \
        "$venv/bin/python" "$here/warm_bytecode.py")
    rm -rf "$scratch"
    echo "slim-venv.sh bytecode: $(find "$venv" -name '*.pyc' | wc -l) modules compiled"
    ;;
*) usage ;;
esac
