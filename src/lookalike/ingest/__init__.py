"""Where images come in: folders and tables become image records, URLs are downloaded, pixels
decoded, and the pipeline embeds them into the catalogue."""
