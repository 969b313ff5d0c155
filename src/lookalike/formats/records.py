"""The fields of the records lookalike writes, defined once: a neighbour's (`Neighbors.to_records`,
`similar --format json/csv`, the web app's table) and a catalogue export's, with their types."""

#: Fields of every neighbour record, in output order (`--format json` and `to_records`).
RECORD_FIELDS = ("rank", "path", "distance", "nearest_reference", "name", "category", "width",
                 "height", "size", "id")

#: Fields a neighbour record gains after RECORD_FIELDS when the user's judgement ranked the
#: look-alikes (negative references, relevance feedback): the ranking score (higher first),
#: the distance to the nearest negative reference and that reference.
FEEDBACK_FIELDS = ("score", "unlike_distance", "nearest_unlike")

#: Fields a duplicate group adds before each image's neighbour record (`duplicates` csv/tab;
#: json gives `group` beside the list of images and the others in each record).
GROUP_FIELDS = ("group", "group_size", "representative", "keep")

#: Catalogue columns of a collection export, in order (then extras, then the vector).
CATALOGUE_FIELDS = ("id", "path", "name", "category", "width", "height", "size")

#: Columns a collection export adds after the catalogue's when the model has a map
#: (`Collection.map`): the image's position on it.
MAP_FIELDS = ("x", "y")

#: Fields written as integers, and as floats; the others are text.
INT_FIELDS = frozenset({"rank", "id", "width", "height", "size", "group", "group_size",
                        "representative"})
FLOAT_FIELDS = frozenset({"distance", "x", "y", "score", "unlike_distance"})

__all__ = ["CATALOGUE_FIELDS", "FEEDBACK_FIELDS", "GROUP_FIELDS", "FLOAT_FIELDS", "INT_FIELDS",
           "MAP_FIELDS", "RECORD_FIELDS"]
