"""The built-in demo dataset (workflow/rules/demo.smk): synthetic music packed like FMA's archives."""
