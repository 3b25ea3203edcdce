"""Training stage (workflow/rules/training.smk): settings, the loop, its optimiser steps,
validation and selection, resumable state, the run log, the linear probe."""
