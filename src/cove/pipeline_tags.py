"""The Hub's pipeline tags (tasks): id -> (label, modality), in the Hub's order (huggingface.js `PIPELINE_DATA`).

One list for everything that needs the task vocabulary: `GET /api/tasks`, card validation, filters.
"""

from __future__ import annotations

from typing import NamedTuple


class Task(NamedTuple):
    label: str
    modality: str  # multimodal | nlp | cv | audio | tabular | rl | other


_ROWS = """
biology|Biology|multimodal
text-classification|Text Classification|nlp
token-classification|Token Classification|nlp
table-question-answering|Table Question Answering|nlp
question-answering|Question Answering|nlp
zero-shot-classification|Zero-Shot Classification|nlp
translation|Translation|nlp
summarization|Summarization|nlp
feature-extraction|Feature Extraction|nlp
text-generation|Text Generation|nlp
text2text-generation|Text2Text Generation|nlp
fill-mask|Fill-Mask|nlp
sentence-similarity|Sentence Similarity|nlp
text-to-speech|Text-to-Speech|audio
text-to-audio|Text-to-Audio|audio
automatic-speech-recognition|Automatic Speech Recognition|audio
audio-to-audio|Audio-to-Audio|audio
audio-classification|Audio Classification|audio
audio-text-to-text|Audio-Text-to-Text|multimodal
voice-activity-detection|Voice Activity Detection|audio
depth-estimation|Depth Estimation|cv
image-classification|Image Classification|cv
object-detection|Object Detection|cv
image-segmentation|Image Segmentation|cv
text-to-image|Text-to-Image|cv
image-to-text|Image-to-Text|cv
image-to-image|Image-to-Image|cv
image-to-video|Image-to-Video|cv
unconditional-image-generation|Unconditional Image Generation|cv
video-classification|Video Classification|cv
reinforcement-learning|Reinforcement Learning|rl
robotics|Robotics|rl
tabular-classification|Tabular Classification|tabular
tabular-regression|Tabular Regression|tabular
tabular-to-text|Tabular to Text|tabular
table-to-text|Table to Text|nlp
multiple-choice|Multiple Choice|nlp
text-ranking|Text Ranking|nlp
text-retrieval|Text Retrieval|nlp
time-series-forecasting|Time Series Forecasting|tabular
text-to-video|Text-to-Video|cv
image-text-to-text|Image-Text-to-Text|multimodal
visual-question-answering|Visual Question Answering|multimodal
document-question-answering|Document Question Answering|multimodal
zero-shot-image-classification|Zero-Shot Image Classification|cv
graph-ml|Graph Machine Learning|other
mask-generation|Mask Generation|cv
zero-shot-object-detection|Zero-Shot Object Detection|cv
text-to-3d|Text-to-3D|cv
image-to-3d|Image-to-3D|cv
image-feature-extraction|Image Feature Extraction|cv
video-text-to-text|Video-Text-to-Text|multimodal
keypoint-detection|Keypoint Detection|cv
visual-document-retrieval|Visual Document Retrieval|multimodal
any-to-any|Any-to-Any|multimodal
other|Other|other
"""

#: Every pipeline tag the Hub knows, in its order.
PIPELINE_TAGS: dict[str, Task] = {
    tag: Task(label, modality) for tag, label, modality in (line.split("|") for line in _ROWS.strip().splitlines())
}
