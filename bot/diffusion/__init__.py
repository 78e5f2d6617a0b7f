"""Everything diffusers: load a text-to-image model once, run seeded batches, report and preview them.

This package is the only part of seedgrid that touches torch and diffusers; both are imported
inside the functions that need them, so importing any of these modules stays cheap. What differs
between model families (devices and precisions, schedulers, the safety checker, prompt length,
latent previews) belongs here too, next to the code it changes.

- :mod:`.families` — what differs per model family (presets, guidance and negative prompts, sizes,
  token limits, previews, what to compile), recognised from the pipeline class.
- :mod:`.pipeline` — :class:`~bot.diffusion.pipeline.Pipeline`: load, warm up, check inputs, one seeded batch.
- :mod:`.shelf` — the models one device keeps loaded, within its memory budget.
- :mod:`.renderer` — :class:`~bot.diffusion.renderer.PipelineRenderer`: a job → grid and PNGs; splits on out-of-memory.
- :mod:`.progress` — the run's callbacks (progress, stop, preview) and the diffusers step callback behind them.
- :mod:`.preview` — latents → a small numbered preview grid, with no extra model.
- :mod:`.prompts` — :class:`~bot.diffusion.prompts.PromptLimit`: where the tokenizer cuts a prompt.
- :mod:`.checker` — the model's safety checker, run on a copy so the originals are kept.
- :mod:`.classifier` — the NSFW image classifier for models without a safety checker.
- :mod:`.devices` — ``model.device`` and ``model.dtype`` → torch.
- :mod:`.schedulers` — ``model.scheduler`` → a diffusers scheduler; how its latents scale.
- :mod:`.speed` — the speed options: attention kernel, channels-last, fused projections, torch.compile, FP8.
- :mod:`.compiled` — compiling with static shapes, warming every reachable shape, never compiling in service.
"""
