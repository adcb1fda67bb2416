"""The Hub's vocabularies for card metadata: license ids and pipeline tags.

Taken from huggingface.js (`packages/hub/src/types/public.ts` `License`, `packages/tasks/src/pipelines.ts`
`PIPELINE_DATA`), the lists huggingface.co validates README metadata against. Tags the Hub retired but that
existing cards still carry (`text2text-generation`, `conversational`) stay accepted: Cove refuses no card the
Hub took when it was written.
"""

from __future__ import annotations


def _ids(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: `license:` values the Hub knows. A license not listed is written `license: other` with `license_name`
#: and `license_link`.
LICENSES = _ids("""
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0
cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0
cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0
cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl
gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc h-research intel-research lppl-1.3c ms-pl mpl-2.0 odc-by odbl
openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license
fair-noncommercial-research-license llama2 llama3 llama3.1 llama3.2 llama3.3 llama4 gemma apple-ascl apple-amlr
unknown other
""")

#: `pipeline_tag:` values (the Hub's task list).
PIPELINE_TAGS = _ids("""
text-classification token-classification table-question-answering question-answering zero-shot-classification
translation summarization feature-extraction text-generation fill-mask sentence-similarity text-to-speech
text-to-audio automatic-speech-recognition audio-to-audio audio-classification audio-text-to-text
voice-activity-detection depth-estimation image-classification object-detection image-segmentation text-to-image
image-to-text image-to-image image-to-video unconditional-image-generation video-classification
reinforcement-learning robotics tabular-classification tabular-regression tabular-to-text table-to-text
multiple-choice text-ranking text-retrieval time-series-forecasting text-to-video image-text-to-text
image-text-to-image image-text-to-video visual-question-answering document-question-answering
zero-shot-image-classification graph-ml mask-generation zero-shot-object-detection text-to-3d image-to-3d
image-feature-extraction video-text-to-text keypoint-detection visual-document-retrieval any-to-any video-to-video
other text2text-generation conversational
""")

#: The warning huggingface.co gives for a card without a YAML header (or an empty one).
EMPTY_METADATA_WARNING = ("empty or missing yaml metadata in repo card "
                          "(https://huggingface.co/docs/hub/model-cards#model-card-metadata)")
