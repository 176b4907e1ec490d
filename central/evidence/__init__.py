"""Evidence kept at central: the image store (filesystem or S3), its SQL, retention and purge.

`store` holds the bytes (content-addressed, by SHA-256), `records` the rows that tie them to
passages (all the evidence SQL, as `auth_store` is for the auth tables), `retention` the pure
policy deciding when a passage's images and personal data go. docs/evidence.md tells the story.
"""
