"""A trial's configuration, from the command line to the typed `TrialConfig`, checked before anything
is written or loaded.

- `compose`: the config ``lora-lab train OVERRIDES`` runs with; Hydra's multi-line failures as one line
  (`lora_lab.config.compose.compose`), schema keys settable without ``+``;
- `overlays`: an overlay (``debug=tiny``) that a study's settings would silently override;
- `trial_config`: `parse` checks every group and returns the typed `TrialConfig`
  (`lora_lab.config.trial_config.parse`);
- `schema_keys`, `trainer_checks`, `backbone_fit`: the checks `parse` runs (a group's schema keys, the
  trainer's arguments against Lightning's own signature, the adapter's fit to the backbone's shapes);
- `resolvers`, `naming`: the config's resolvers and the run directory names they make.
"""
