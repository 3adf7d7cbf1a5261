"""What keeps tenants apart and secrets in: secret look-up, masking and redaction (values, logs, file
descriptors), the guarded outbound client and the file-system path allow-list."""
