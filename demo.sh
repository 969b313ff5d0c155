#!/usr/bin/env bash
# Sets everything up, indexes the bundled Twemoji sample and shows the look-alikes of one emoji.
set -euo pipefail
cd "$(dirname "$0")"
bash setup.sh
LOOKALIKE=.venv/bin/lookalike
$LOOKALIKE datasets get twemoji samples/twemoji
$LOOKALIKE index samples/twemoji --db samples/twemoji.db
echo
echo "Look-alikes of samples/twemoji/Smileys & Emotion/face-smiling/grinning.png:"
$LOOKALIKE similar "samples/twemoji/Smileys & Emotion/face-smiling/grinning.png" --db samples/twemoji.db -k 8
