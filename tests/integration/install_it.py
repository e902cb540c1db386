#!/usr/bin/env python3
"""`cmake --install` of the build tree into a DESTDIR: the files land where README.md ("Install
as a service") says, the example configuration is installed once and never overwritten, and the
systemd unit passes `systemd-analyze verify` (and `security --offline` rates its hardening).

usage: install_it.py --sipwake BUILD/sipwake --work-dir DIR install
The build directory is the one holding BUILD/sipwake; the install paths come from the
environment CTest sets (SIPWAKE_INSTALL_BINDIR, _CONFIG, _STATEDIR, _UNITDIR, _SYSUSERSDIR,
_DOCDIR: absolute paths as configured) and CMAKE_COMMAND.
"""
import os
import re
import shutil
import subprocess
import sys

import sipwake_it
from sipwake_it import Skip, check, run_cmd

MAX_EXPOSURE = 2.5  # systemd-analyze security: 0 = fully locked down .. 10 = unprotected


def env_path(name):
    value = os.environ.get(name, "")
    check(os.path.isabs(value), "%s not set to an absolute path: %r" % (name, value))
    return value


def cmake_install(ctx, destdir):
    build_dir = os.path.dirname(ctx.sipwake)
    env = dict(os.environ, DESTDIR=destdir)
    cmd = [os.environ.get("CMAKE_COMMAND", "cmake"), "--install", build_dir]
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode("utf-8", "replace")
    check(p.returncode == 0, "%s: exit %d\n%s" % (" ".join(cmd), p.returncode, out))
    return out


def under(destdir, path):
    return destdir + path


def test_install(ctx):
    bindir, config = env_path("SIPWAKE_INSTALL_BINDIR"), env_path("SIPWAKE_INSTALL_CONFIG")
    statedir, unitdir = env_path("SIPWAKE_INSTALL_STATEDIR"), env_path("SIPWAKE_INSTALL_UNITDIR")
    sysusersdir, docdir = env_path("SIPWAKE_INSTALL_SYSUSERSDIR"), env_path("SIPWAKE_INSTALL_DOCDIR")
    root = os.path.join(ctx.work, "root")
    cmake_install(ctx, root)

    for name in ("sipwake", "sipwake-pushprobe"):
        path = under(root, os.path.join(bindir, name))
        check(os.path.isfile(path) and os.access(path, os.X_OK), "not installed: %s" % path)
    check(not os.path.exists(under(root, os.path.join(bindir, "sipwake-fakepns"))),
          "the test tool sipwake-fakepns is installed")
    code, out, err = run_cmd([under(root, os.path.join(bindir, "sipwake")), "--help"])
    check(code == 0 and "--config" in out, "installed sipwake --help: exit %d %s" % (code, err))

    live = under(root, config)
    example = os.path.join(ctx.source_dir, "config", "sipwake.example.toml")
    with open(live) as f, open(example) as g:
        check(f.read() == g.read(), "%s is not the example configuration" % live)
    check(os.stat(live).st_mode & 0o022 == 0, "%s is group/other-writable" % live)
    code, out, err = run_cmd([ctx.sipwake, "check-config", live])
    check(code == 0, "check-config of the installed configuration: %s%s" % (out, err))
    for doc in ("README.md", "configuration.md", "sipwake.example.toml"):
        check(os.path.isfile(under(root, os.path.join(docdir, doc))), "doc missing: %s" % doc)
    state = under(root, statedir)
    check(os.path.isdir(state) and os.stat(state).st_mode & 0o007 == 0,
          "state directory %s missing or open to others" % state)
    with open(under(root, os.path.join(sysusersdir, "sipwake.conf"))) as f:
        check(re.search(r"^u sipwake ", f.read(), re.M), "sysusers.d entry lacks the sipwake user")

    # An operator's edited configuration survives a second install.
    with open(live, "a") as f:
        f.write("# edited by the operator\n")
    out = cmake_install(ctx, root)
    with open(live) as f:
        check(f.read().endswith("# edited by the operator\n"), "a reinstall overwrote %s" % live)
    check("Kept existing" in out, "the reinstall does not say it kept the configuration:\n" + out)

    unit_path = under(root, os.path.join(unitdir, "sipwake.service"))
    with open(unit_path) as f:
        unit = f.read()
    for line in ("ExecStart=%s/sipwake --config %s" % (bindir, config), "User=sipwake",
                 "StateDirectory=sipwake", "WorkingDirectory=%S/sipwake", "ProtectSystem=strict",
                 "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "Restart=on-failure",
                 "ExecReload=kill -HUP $MAINPID"):
        check(re.search("^" + re.escape(line) + "$", unit, re.M), "unit lacks %r" % line)
    check_unit_with_systemd(ctx, unit.replace(bindir + "/", under(root, bindir) + "/"))


def check_unit_with_systemd(ctx, unit):
    """systemd-analyze verify (any message is a failure: unknown keys are only warnings) on the
    unit with its commands pointed into the DESTDIR, so that their existence is checked too."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        raise Skip("systemd-analyze not found (Debian package systemd); the unit was checked "
                   "for its directives only")
    path = os.path.join(ctx.work, "verify", "sipwake.service")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(unit)
    code, out, err = run_cmd([analyze, "verify", "--man=no", path], timeout=60)
    if code != 0 and ("Failed to initialize manager" in err or "Failed to connect" in err):
        raise Skip("systemd-analyze verify cannot run here: " + err.strip())
    check(code == 0 and out.strip() == "" and err.strip() == "",
          "systemd-analyze verify: exit %d\n%s%s" % (code, out, err))
    code, out, err = run_cmd([analyze, "security", "--offline=yes", "--no-pager", path], timeout=60)
    m = re.search(r"Overall exposure level for sipwake\.service: ([0-9.]+)", out + err)
    check(m is not None, "systemd-analyze security printed no exposure level:\n%s%s" % (out, err))
    ctx.note("systemd-analyze security: exposure %s" % m.group(1))
    check(float(m.group(1)) <= MAX_EXPOSURE, "unit exposure %s > %s" % (m.group(1), MAX_EXPOSURE))


if __name__ == "__main__":
    sys.exit(sipwake_it.run_module_tests(globals()))
