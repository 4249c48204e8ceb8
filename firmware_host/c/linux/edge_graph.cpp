// EdgeGraph over executorch::extension::Module, with ETDumpGen as the event tracer when profiling.
#include "edge_graph.hpp"

#include <chrono>
#include <cstdio>
#include <executorch/devtools/etdump/etdump_flatcc.h>
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/platform/platform.h>
#include <stdexcept>

#include "edge_bundle.hpp"

namespace acom {

using executorch::extension::Module;
using executorch::runtime::Error;

namespace {

bool g_verbose = false;

void emit_log(et_timestamp_t, et_pal_log_level_t level, const char* file, const char*, size_t line,
              const char* message, size_t length) {
    if (!g_verbose && level != kError && level != kFatal) return;
    std::fprintf(stderr, "executorch %c %s:%zu] %.*s\n", static_cast<char>(level), file, line,
                 static_cast<int>(length), message);
}

}  // namespace

void set_runtime_log(bool verbose) {
    g_verbose = verbose;
    executorch::runtime::register_pal(executorch::runtime::PalImpl::create(emit_log, __FILE__));
}

struct EdgeGraph::Impl {
    std::unique_ptr<Module> module;
    executorch::etdump::ETDumpGen* tracer = nullptr;  // owned by the module
    std::string etdump;
    std::vector<float> input;
    int window = 0;
};

EdgeGraph::EdgeGraph(const std::string& pte, int window, const std::string& etdump) : impl_(new Impl) {
    impl_->window = window;
    impl_->etdump = etdump;
    impl_->input.resize(static_cast<size_t>(window));
    std::unique_ptr<executorch::runtime::EventTracer> tracer;
    if (!etdump.empty()) {
        auto gen = std::make_unique<executorch::etdump::ETDumpGen>();
        impl_->tracer = gen.get();
        tracer = std::move(gen);
    }
    impl_->module = std::make_unique<Module>(pte, Module::LoadMode::File, std::move(tracer));
    Error e = impl_->module->load_method("forward");
    if (e != Error::Ok)
        throw InputError(pte + ": the ExecuTorch runtime refused the program (error " +
                         std::to_string(static_cast<int>(e)) + "; is it a .pte from this acom's export?)");
    auto meta = impl_->module->method_meta("forward");
    if (!meta.ok() || meta->num_inputs() != 1) throw InputError(pte + ": method forward does not take one input");
    auto in = meta->input_tensor_meta(0);
    if (!in.ok() || in->sizes().size() != 2 || in->sizes()[1] != window)
        throw InputError(pte + ": the graph's input is not [1, " + std::to_string(window) +
                         "] (graph.window_samples in the manifest)");
}

EdgeGraph::~EdgeGraph() {
    if (!impl_->tracer) return;
    auto dump = impl_->tracer->get_etdump_data();
    if (dump.buf && dump.size) {
        FILE* f = std::fopen(impl_->etdump.c_str(), "wb");
        if (f) {
            std::fwrite(dump.buf, 1, dump.size, f);
            std::fclose(f);
        } else {
            std::fprintf(stderr, "acom-edge: cannot write the ETDump to %s\n", impl_->etdump.c_str());
        }
        std::free(dump.buf);
    }
}

const int32_t* EdgeGraph::run(const float* audio, int* n_q, int* frames) {
    auto start = std::chrono::steady_clock::now();
    std::copy(audio, audio + impl_->window, impl_->input.begin());
    auto tensor = executorch::extension::from_blob(impl_->input.data(), {1, impl_->window});
    auto result = impl_->module->forward(tensor);
    if (!result.ok()) throw std::runtime_error("the edge graph failed (ExecuTorch error " +
                                               std::to_string(static_cast<int>(result.error())) + ")");
    const auto& out = (*result)[0].toTensor();
    if (out.dim() != 3 || out.scalar_type() != executorch::aten::ScalarType::Int)
        throw std::runtime_error("the edge graph's output is not int32 codes [1, n_q, T]");
    *n_q = static_cast<int>(out.size(1));
    *frames = static_cast<int>(out.size(2));
    last_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return out.const_data_ptr<int32_t>();
}

}  // namespace acom
