#include "net/stage_hello.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "net/stage.h"
#include "net/stage_client.h"

namespace ggswarm::net {

std::vector<HelloAnswer> AskHello(const std::vector<std::string>& addresses, const StubFn& stub,
                                  const PrepareFn& prepare, const EnoughFn& enough) {
  using Clock = std::chrono::steady_clock;
  const size_t n = addresses.size();
  std::vector<HelloAnswer> answers(n);
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  for (size_t i = 0; i < n; ++i) {
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    prepare(ctxs.back().get());
  }
  std::mutex mu;
  std::condition_variable cv;
  size_t done = 0;
  bool waiting = true;  // answers coming in after the wait count as not done
  std::vector<std::thread> asks;
  for (size_t i = 0; i < n; ++i)
    asks.emplace_back([&, i] {
      auto s = stub(addresses[i]);
      stage::v1::HelloRequest req;
      req.set_version(kStageProtocolVersion);
      stage::v1::HelloReply rep;
      const auto t0 = Clock::now();
      grpc::Status st = s->Hello(ctxs[i].get(), req, &rep);
      const double rtt = std::chrono::duration<double>(Clock::now() - t0).count();
      std::lock_guard<std::mutex> l(mu);
      answers[i].status = std::move(st);
      answers[i].reply = std::move(rep);
      answers[i].rtt_s = rtt;
      answers[i].done = waiting;
      ++done;
      cv.notify_all();
    });
  {
    const auto start = Clock::now();
    std::optional<Clock::time_point> until;  // once the answers are enough
    std::unique_lock<std::mutex> l(mu);
    while (done < n) {
      if (enough && !until && enough(answers)) {
        const double took = std::chrono::duration<double>(Clock::now() - start).count();
        until = Clock::now() +
                std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(std::clamp(took, kStragglerS, kStragglerMaxS)));
      }
      if (until) {
        if (cv.wait_until(l, *until) == std::cv_status::timeout) break;
      } else {
        cv.wait(l);
      }
    }
    waiting = false;
  }
  for (auto& c : ctxs) c->TryCancel();  // the calls still out
  for (std::thread& t : asks) t.join();
  return answers;
}

}  // namespace ggswarm::net
