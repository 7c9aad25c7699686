"""#21 on a CPU machine: placement, memory hygiene, device identity, loss scaling, install diagnosis, hub
errors and chat templates. What needs a real GPU is in bench/gpu_check.py (run on a lent GPU)."""

import gc
import json
import weakref
from types import SimpleNamespace

import pytest
import torch

from fedlab.core import accelerator, memory, models, precision, prompts
from fedlab.core.peft_methods import AdapterSnapshot, adapter_state, load_for_method
from fedlab.errors import ConfigError, ModelError
from fedlab.experiment import baselines
from fedlab.experiment.config import RunConfig
from fedlab.experiment.profiles import load_profile
from fedlab.experiment.resources import Resources, placement
from fedlab.study import run
from tests.conftest import TINY


# --------------------------------------------------------------------------- parallel clients
def test_placement_packs_clients_on_a_gpu_and_divides_the_cores():
    # full.yaml: client_gpus 0.5, 16 cores, 1 GPU, the server keeps 0 -> 2 clients at once, 8 cores each
    two = placement(Resources(client_gpus=0.5, server_gpu=0.0), n_clients=8, cpus=16, gpus=1)
    assert (two.at_once, two.num_cpus, two.num_gpus) == (2, 8, 0.5)
    # the server's share comes out of GPU 0: 0.25 per client with 0.25 kept -> 3 slots
    three = placement(Resources(client_gpus=0.25, server_gpu=0.25), n_clients=8, cpus=12, gpus=1)
    assert (three.at_once, three.num_cpus) == (3, 4)
    assert placement(Resources(client_gpus=0.1, server_gpu=0.0), 20, 40, 1).at_once == 10  # no 1 // 0.1 == 9
    # no more at once than clients, and a given client_cpus is kept
    assert placement(Resources(client_gpus=0.25, client_cpus=2, server_gpu=0.0), 2, 16, 1).at_once == 2
    # without a GPU: one client at a time on every core (the default), or client_cpus each
    cpu = placement(Resources(), 4, 2, 0)
    assert (cpu.at_once, cpu.num_cpus, cpu.num_gpus) == (1, 2, 0.0) and "no GPU" in cpu.describe(4)
    assert placement(Resources(client_cpus=1), 4, 2, 0).at_once == 2
    with pytest.raises(ConfigError, match="server_gpu"):
        Resources.from_dict({"server_gpu": 1.0})


def test_the_plan_says_how_many_clients_train_at_once(results):
    from fedlab import study

    text = study.plan("smoke").describe()
    assert "clients train at once" in text


# --------------------------------------------------------------------------- memory hygiene
def test_a_finished_run_frees_its_model(results, monkeypatch):
    """The executor's model is gone once the run returns: the result holds an adapter snapshot, the
    store writes it and drops it (a weak reference to the model proves it is collected)."""
    # warm-up: the first import of bitsandbytes (through peft) logs an exception whose traceback pytest's
    # log capture keeps, and with it the frames (and locals) of whatever was loading; not a leak of fedlab's
    load_for_method("tiny-random", "lora", "fp32")
    gc.collect()
    refs = []
    real = baselines.load_for_method

    def spy(*args, **kwargs):
        model, tok, info = real(*args, **kwargs)
        refs.append(weakref.ref(model))
        return model, tok, info

    monkeypatch.setattr(baselines, "load_for_method", spy)
    out = run(RunConfig(**dict(TINY, setting="centralized", max_eval=6, n_boot=0)), progress=False)
    gc.collect()
    assert refs and refs[0]() is None, "the run's model outlived the run"
    assert (
        out.adapter is None
        and out.adapter_dir
        and (out.path.parent / out.adapter_dir / "adapter_model.safetensors").is_file()
    )


def test_an_adapter_snapshot_loads_back_as_the_same_adapter(tmp_path):
    from peft import PeftModel

    model, _, _ = load_for_method("tiny-random", "lora", "fp32", seed=3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(0.01)
    snap = AdapterSnapshot.of(model)
    snap.save(tmp_path / "a")
    base, _, _ = models.load_model("tiny-random", dtype="fp32")
    loaded = PeftModel.from_pretrained(base, tmp_path / "a")
    want, got = adapter_state(model), adapter_state(loaded)
    assert set(want) == set(got) and all((want[k] == got[k]).all() for k in want)
    assert json.loads((tmp_path / "a" / "adapter_config.json").read_text())["inference_mode"] is True


def test_gpu_memory_helpers_are_no_ops_on_a_cpu():
    with memory.CudaPeak() as gpu, memory.gpu_memory_cap(0.25) as cap:
        torch.ones(10)
    assert gpu.result is None and cap.applied is False
    memory.free_accelerator_memory()


# --------------------------------------------------------------------------- device identity
def test_a_gpu_result_has_its_own_identity_and_cpu_hashes_stay(monkeypatch):
    cfg = load_profile("quick").config("fpb", "federated", "lora")
    cpu = cfg.resolved()
    assert cpu.device_kind == "cpu" and "device_kind" not in cpu.to_dict()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H200")
    monkeypatch.setattr(models, "cpu_supports_bf16", lambda: False)
    gpu = cfg.resolved()
    assert gpu.device_kind == "gpu-nvidia-h200" and gpu.hash() != cpu.hash()
    assert "gpu-nvidia-h200" in gpu.stem() and "gpu" not in cpu.stem()
    # a user cannot label a GPU run as a CPU one: the machine sets it
    assert RunConfig(**dict(TINY, device_kind="cpu")).resolved().device_kind == "gpu-nvidia-h200"


def test_the_committed_cpu_results_keep_their_hashes(fedlab_data_dir, monkeypatch):
    from fedlab.experiment.store import ResultStore

    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    cfg = load_profile("quick").config("fpb", "federated", "lora", model="smollm2-135m").resolved()
    assert ResultStore().lookup(cfg) is not None, "a committed quick result is no longer found by its config"


# --------------------------------------------------------------------------- precision
def test_loss_scaling_only_for_fp16_on_a_gpu():
    def fake(device, dtype):
        p = SimpleNamespace(device=SimpleNamespace(type=device), dtype=dtype)
        return SimpleNamespace(parameters=lambda: iter([p]))

    assert precision.needs_loss_scaling("fp16", fake("cuda", torch.float32))
    assert precision.needs_loss_scaling(None, fake("cuda", torch.float16))
    assert not precision.needs_loss_scaling("bf16", fake("cuda", torch.float32))
    assert not precision.needs_loss_scaling("fp16", fake("cpu", torch.float32))
    scaler = precision.loss_scaler(None, torch.nn.Linear(2, 2))
    assert not scaler.is_enabled()
    loss = torch.tensor(2.0)
    assert scaler.scale(loss) is loss  # a pass-through: CPU runs are unchanged
    with pytest.raises(ConfigError, match="autocast fp16 is for GPUs"):
        precision.check_autocast("fp16", "cpu")


def test_a_cpu_training_run_records_no_loss_scaling(tiny, fedlab_data_dir, monkeypatch):
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    from fedlab.core.train import train_local
    from fedlab.data import load_splits

    model, tokenizer, _ = load_for_method("tiny-random", "lora", "fp32")
    stats = train_local(model, tokenizer, load_splits("fpb").train[:8], steps=2, batch_size=2, lr=1e-3, max_length=64)
    assert "loss_scaling" not in stats.to_dict() and stats.loss_scaling is None


# --------------------------------------------------------------------------- install diagnosis
SMI = """+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
|=========================================+========================+======================|
|   0  NVIDIA A100-SXM4-40GB          On  |   00000000:00:04.0 Off |                    0 |
"""


def test_nvidia_smi_is_read_and_a_driver_too_old_for_torch_is_an_error():
    assert accelerator.parse_nvidia_smi(SMI) == ("NVIDIA A100-SXM4-40GB", "550.54.15", "12.4")
    assert accelerator.parse_nvidia_smi("") == (None, None, None)
    old = accelerator.GpuReport("NVIDIA A100-SXM4-40GB", "550.54.15", "12.4", "12.8", False)
    assert "CUDA 12.8" in old.problem and "cu124" in old.problem and "update the NVIDIA driver" in old.problem
    with pytest.raises(ModelError, match="cannot use the GPU"):
        accelerator.check(old)
    cpu_build = accelerator.GpuReport("NVIDIA T4", "535.1", "12.2", None, False)
    assert "CPU build" in cpu_build.problem and "cu122" in cpu_build.problem
    assert accelerator.GpuReport(None, None, None, None, False).problem is None
    assert accelerator.GpuReport("NVIDIA T4", "535.1", "12.2", "12.1", True).problem is None


def test_a_cpu_build_on_a_gpu_machine_warns(capsys):
    accelerator.check(accelerator.GpuReport("NVIDIA T4", "535.1", "12.2", None, False))
    assert "warning" in capsys.readouterr().err


# --------------------------------------------------------------------------- hub models and templates
def test_hub_errors_name_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE=0" in str(models.hub_error("Qwen/Qwen2.5-0.5B-Instruct", OSError("offline")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    gated = models.hub_error("meta-llama/Llama-3.2-1B-Instruct", OSError("You are trying to access a gated repo."))
    assert "HF_TOKEN" in str(gated) and "huggingface.co/meta-llama/Llama-3.2-1B-Instruct" in str(gated)
    assert "check the id" in str(models.hub_error("no/such-model", OSError("404")))


class _NoSystemTemplate:
    """A tokenizer whose chat template refuses a system turn (as Mistral's does)."""

    chat_template = "x"

    def apply_chat_template(self, messages, add_generation_prompt, tokenize):
        if messages[0]["role"] == "system":
            raise ValueError("System role not supported")
        return "[INST] " + messages[0]["content"] + " [/INST]"


def test_a_template_without_system_turns_gets_none_when_the_system_prompt_is_empty(fedlab_data_dir, monkeypatch):
    monkeypatch.setenv("FEDLAB_DATA_DIR", str(fedlab_data_dir))
    from fedlab.data import load_splits

    record = load_splits("fpb").eval[0]
    text = prompts.prompt_text(record, _NoSystemTemplate(), system_prompt="")
    assert text.startswith("[INST] ") and record.text[:20] in text
    with pytest.raises(ConfigError, match="refuses a system turn"):
        prompts.prompt_text(record, _NoSystemTemplate(), system_prompt="You are a clinician.")


def test_the_gpu_check_runs_on_a_cpu(tmp_path, monkeypatch):
    """bench/gpu_check.py needs only torch/transformers/peft; on a CPU its GPU-only parts say skipped."""
    import importlib.util
    from pathlib import Path

    monkeypatch.setenv("OUT", str(tmp_path))
    path = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(__import__("sys").modules, "gpu_check", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    out = module.main(["--device", "cpu", "--small", "--steps", "2", "--no-packing"])
    saved = json.loads((tmp_path / "gpu_check_cpu.json").read_text())
    assert saved["device"] == "cpu" and saved["device_kind"] == "cpu" and saved["failures"] == []
    assert set(saved["runs"]) == {"smollm2-135m/lora", "smollm2-135m/ia3", "gemma3-270m/lora", "gemma3-270m/ia3"}
    for run_ in saved["runs"].values():
        assert run_["device_of_parameters"] == ["cpu"] and run_["device_of_batches"] == ["cpu"]
        assert run_["forward_calls"] >= 3 and run_["model_freed"] and run_["train_tokens_per_s"] > 0
        assert run_["gpu"] is None and run_["eval"]["rows"] == 32
    assert saved["server_cap"] == {"skipped": "no CUDA"} and out["packing"]["skipped"]
    assert saved["qlora"]["run"] is False and saved["qlora"]["why_not"]


def test_the_paper_profile_checks_hub_access_before_its_first_run(monkeypatch):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError

    from fedlab import study

    assert study.check_profile_hub("quick") == [] and study.check_profile_hub("smoke") == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="PROFILE=paper"):
        study.check_profile_hub("paper")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    seen = []

    def info(self, repo_id, token=None):
        seen.append(repo_id)
        if repo_id.startswith("meta-llama/"):
            import httpx

            raise GatedRepoError(
                "401 Client Error: gated repo",
                response=httpx.Response(401, request=httpx.Request("GET", "https://huggingface.co")),
            )
        return SimpleNamespace(gated="manual" if repo_id.startswith("mistralai/") else False)

    monkeypatch.setattr(HfApi, "model_info", info)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(ModelError, match="HF_TOKEN") as err:
        study.check_profile_hub("paper")
    assert "huggingface.co/meta-llama/Llama-3.2-1B-Instruct" in str(err.value)
    assert seen[:2] == ["Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct"]
    # with a token, the gated ids pass (their licence accepted: model_info answers)
    monkeypatch.setattr(HfApi, "model_info", lambda self, repo_id, token=None: SimpleNamespace(gated="manual"))
    monkeypatch.setattr("huggingface_hub.get_token", lambda: "hf_x")
    assert len(study.check_profile_hub("paper")) == 4


def test_per_run_gpu_memory_is_recorded_with_a_faked_cuda(results, monkeypatch):
    """With CUDA in use (faked: this machine has none), a run's result carries its peak GPU memory."""
    fake = SimpleNamespace(
        device_count=lambda: 1,
        get_device_name=lambda d: "Fake GPU",
        reset_peak_memory_stats=lambda d: None,
        max_memory_allocated=lambda d: 3 * 2**30,
        max_memory_reserved=lambda d: 4 * 2**30,
        empty_cache=lambda: None,
    )
    monkeypatch.setattr(memory, "_cuda", lambda: fake)
    out = run(RunConfig(**dict(TINY, setting="centralized", max_eval=6, n_boot=0)), progress=False)
    assert out.memory.train_gpu["peak_allocated_mb"] == 3072.0 and out.memory.train_gpu["peak_reserved_mb"] == 4096.0
    assert out.memory.train_gpu["devices"][0]["name"] == "Fake GPU"
    saved = json.loads(out.path.read_text())
    assert saved["memory"]["train_gpu"]["peak_allocated_mb"] == 3072.0
