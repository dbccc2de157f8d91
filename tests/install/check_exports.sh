#!/bin/sh
# Checks that the shared library exports exactly the functions that
# tensortape.h declares with TT_API: no helper of src/internal.h, and no
# symbol without the tt_ prefix.
# Usage: check_exports.sh LIBRARY HEADER
set -eu

library=$1
header=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Defined dynamic symbols: "ADDRESS TYPE NAME" on each line.
nm -D --defined-only "$library" | awk 'NF == 3 { print $3 }' | sort -u > "$work/exported"

# The name before the opening parenthesis of each TT_API declaration.
sed -n 's/^TT_API [^(]*[^A-Za-z0-9_]\([A-Za-z_][A-Za-z0-9_]*\)(.*/\1/p' "$header" |
    sort -u > "$work/declared"

status=0

if [ ! -s "$work/declared" ]; then
    echo "no TT_API declaration found in $header"
    exit 1
fi

unprefixed=$(grep -v '^tt_' "$work/exported" || true)
if [ -n "$unprefixed" ]; then
    echo "exported symbols without the tt_ prefix:"
    echo "$unprefixed"
    status=1
fi

undeclared=$(comm -23 "$work/exported" "$work/declared")
if [ -n "$undeclared" ]; then
    echo "exported but not declared with TT_API in tensortape.h:"
    echo "$undeclared"
    status=1
fi

missing=$(comm -13 "$work/exported" "$work/declared")
if [ -n "$missing" ]; then
    echo "declared with TT_API but not exported:"
    echo "$missing"
    status=1
fi

# Helpers of src/internal.h, by name, so that a failure names the leak even
# if one of them were ever declared in the public header by mistake.
for pattern in '^tt_arena_' '^tt_op_' '^tt_gemm' '^tt_pool_' '^tt_anomaly_' \
    '^tt_tape_fail$' '^tt_error_set$' '^tt_error_vset$' '^tt_shape_size$' \
    '^tt_tensor_label$'; do
    leaked=$(grep "$pattern" "$work/exported" || true)
    if [ -n "$leaked" ]; then
        echo "internal symbols exported:"
        echo "$leaked"
        status=1
    fi
done

exit $status
