#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# embed-text.py INPUT OUTPUT SYMBOL: writes a C file that defines
# "const char SYMBOL[]" holding INPUT's text, so that a file kept as the single
# source of truth (an interface definition) is compiled into the daemon.

import sys


def c_line(line):
    out = []
    for ch in line:
        if ch == '\\':
            out.append('\\\\')
        elif ch == '"':
            out.append('\\"')
        elif ch == '\n':
            out.append('\\n')
        elif ch == '\t':
            out.append('\\t')
        elif ord(ch) < 0x20 or ord(ch) > 0x7e:
            for b in ch.encode('utf-8'):
                out.append('\\%03o' % b)
        else:
            out.append(ch)
    return '"' + ''.join(out) + '"'


def main():
    src, dst, symbol = sys.argv[1:4]
    with open(src, encoding='utf-8') as f:
        lines = f.read().splitlines(keepends=True)
    with open(dst, 'w', encoding='utf-8') as f:
        f.write('/* Generated from %s by embed-text.py; do not edit. */\n\n' % src.split('/')[-1])
        f.write('extern const char %s[];\n' % symbol)
        f.write('const char %s[] =\n' % symbol)
        for line in lines:
            f.write('        %s\n' % c_line(line))
        if not lines:
            f.write('        ""\n')
        f.write('        ;\n')


if __name__ == '__main__':
    main()
