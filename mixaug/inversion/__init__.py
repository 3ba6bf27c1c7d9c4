"""Inversion: embedding → text. The adaptor and prompt (`invert`), the decode engine (`decode`), int8
(`quantize`, `calibration`), lexical anchoring (`anchor`), encoder-guided search (`search`), the decode
cache (`decode_cache`), the loaded stack and its candidates (`candidates`), the checkpoint folder
(`checkpoint`) and offline model resolution (`models`). A library the pipeline calls: it never imports the
API, the Face, Training, Report or Evaluation."""
